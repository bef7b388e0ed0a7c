"""``robustfusion frm DIR``: plot MWAM's FRM and K per modality and name the dominant modality,
with one-line warnings where FRM is outside the paper's domain or constant over training."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robustfusion.accepts import TEXT, ArgType
from robustfusion.evaluation.frm_analysis import (
    dominant_modality,
    epoch_means,
    frm_warnings,
    plot_frm,
    read_frm_log,
)

NAME = "frm"
HELP = "plot FRM and K per modality of an MWAM run and print which modality dominates"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir",
        type=ArgType(TEXT, "DIR"),
        metavar="DIR",
        help="a run trained with mwam or mwam+X",
    )
    parser.add_argument(
        "--out",
        type=ArgType(TEXT, "--out"),
        default=None,
        help="figure file (default DIR/frm.png)",
    )


def run(args: argparse.Namespace) -> int:
    log = read_frm_log(Path(args.run_dir))
    out = plot_frm(log, Path(args.out or Path(args.run_dir) / "frm.png"), title=str(args.run_dir))
    names = log.modalities
    print("epoch  " + "  ".join(f"{q}.{m}" for q in ("frm", "T", "K") for m in names))
    for epoch, means in epoch_means(log).items():
        cells = [f"{means[q][m]:.4g}" for q in ("frm", "T", "K") for m in names]
        print(f"{epoch:5d}  " + "  ".join(cells))
    warnings = frm_warnings(log)
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    dominant, ratios = dominant_modality(log)
    listing = ", ".join(f"{m} {t:.3f}" for m, t in ratios.items())
    if warnings:
        print(
            f"dominant modality by FRM: {dominant} (mean T over the last epoch: {listing}); "
            "see the warnings: not evidence of what the model relies on"
        )
    else:
        print(f"dominant modality: {dominant} (mean T over the last epoch: {listing})")
    print(f"figure: {out}")
    return 0
