"""``robustfusion evaluate DIR``: a run's test metrics, clean or over corruption severities."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from robustfusion.accepts import TEXT, ArgType, integer, number
from robustfusion.atomic import write_json
from robustfusion.commands._settings import add_weights_argument
from robustfusion.errors import ConfigError
from robustfusion.evaluation.grids import DEFAULT_SEVERITIES
from robustfusion.registry import CORRUPTIONS
from robustfusion.training.config import default_value

NAME = "evaluate"
HELP = "evaluate a trained run on its test split, clean or corrupted; prints a table, writes JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir",
        metavar="DIR",
        type=ArgType(TEXT, "DIR"),
        help="a run folder written by robustfusion train",
    )
    parser.add_argument(
        "--corruption",
        type=ArgType(TEXT, "--corruption"),
        help=f"{', '.join(DEFAULT_SEVERITIES)} (default: none, the clean test set)",
    )
    parser.add_argument(
        "--severities",
        type=ArgType(number(0.0, 1e6), "--severities", items=True),
        help="comma-separated severities, e.g. 0,0.5,1,2 (default: per corruption: "
        + "; ".join(f"{k} {','.join(f'{v:g}' for v in vs)}" for k, vs in DEFAULT_SEVERITIES.items())
        + ")",
    )
    parser.add_argument(
        "--target",
        default="all",
        type=ArgType(TEXT, "--target"),
        help="all, each (p=0.5 per modality) or one modality (default: all)",
    )
    parser.add_argument(
        "--seed",
        type=ArgType(integer(0, 2**32 - 1), "--seed"),
        default=0,
        help="seeds the corruptions (default: 0)",
    )
    parser.add_argument(
        "--batch-size",
        type=ArgType(integer(1, 1_000_000), "--batch-size"),
        default=default_value("eval_batch_size"),
        help=f"evaluation batch size (default: {default_value('eval_batch_size')})",
    )
    add_weights_argument(parser)
    parser.add_argument(
        "--data",
        metavar="FILE.npz",
        type=ArgType(TEXT, "--data"),
        help="where the run's .npz file is now, if it moved (default: the place in its config)",
    )
    parser.add_argument(
        "--data-root",
        metavar="DIR",
        type=ArgType(TEXT, "--data-root"),
        help="where the run's prepared dataset is now, if it moved (default: its config's)",
    )
    parser.add_argument(
        "--out",
        metavar="FILE.json",
        type=ArgType(TEXT, "--out"),
        help="JSON file (default: DIR/eval-CORRUPTION-TARGET.json, with -WEIGHTS unless learned)",
    )


def parse_severities(given: list[float] | None, corruption: str | None) -> tuple[float, ...]:
    """The severities to sweep: ``--severities`` (parsed and range-checked by its flag), else
    the corruption's defaults."""
    if given is None:
        return DEFAULT_SEVERITIES.get(corruption, (0.0, 1.0)) if corruption else (0.0,)
    values = tuple(float(v) for v in given)
    if corruption is None and any(v != 0 for v in values):
        raise ConfigError(f"--severities needs --corruption ({', '.join(DEFAULT_SEVERITIES)})")
    return values


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table: one row per severity, the task's metrics (accuracy, macro-F1, ECE;
    mIoU, pixel and class accuracy), the weights per modality and the unimodal heads' figures."""
    from robustfusion.tasks import task_of

    task = task_of(str(report.get("task", "classification")))
    rows = report["results"]
    modalities = list(rows[0]["mean_weight"]) if rows else []
    unimodal = list(rows[0][task.unimodal_key]) if rows else []
    header = ["severity", *task.metric_names]
    header += [f"w[{m}]" for m in modalities] + [f"{task.unimodal_label}[{m}]" for m in unimodal]
    lines = [
        [f"{r['severity']:g}", *(f"{r[name]:.4f}" for name in task.metric_names)]
        + [f"{r['mean_weight'][m]:.3f}" for m in modalities]
        + [f"{r[task.unimodal_key][m]:.4f}" for m in unimodal]
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    title = (
        f"{report['method']} on {report['dataset']} (test), corruption {report['corruption']}, "
        f"target {report['target']}"
    )
    if report.get("weights", "learned") != "learned":
        title += f", {report['weights']} weights"
    out = [title, "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    out += ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)


def output_path(args: argparse.Namespace, run_dir: Path) -> Path:
    """``--out``, or ``DIR/eval-CORRUPTION-TARGET[-WEIGHTS].json``; never one of the run's own
    files."""
    from robustfusion.training.run import RUN_FILES

    if args.out is None:
        suffix = "" if args.weights == "learned" else f"-{args.weights}"
        return run_dir / f"eval-{args.corruption or 'clean'}-{args.target}{suffix}.json"
    out = Path(args.out)
    own = {(run_dir / name).resolve() for name in RUN_FILES}
    if out.resolve() in own or out.is_dir():
        raise ConfigError(
            f"--out {out} would replace {'a folder' if out.is_dir() else 'a file of the run'}: "
            "give a new .json file"
        )
    return out


def run(args: argparse.Namespace) -> int:
    from robustfusion.evaluation.sweep import evaluate_run  # Lightning loads only when needed

    run_dir = Path(args.run_dir)
    if args.corruption is not None:
        CORRUPTIONS.get(args.corruption)  # unknown names fail before the run is loaded
    severities = parse_severities(args.severities, args.corruption)
    if args.weights == "oracle" and (args.corruption is None or args.target == "all"):
        raise ConfigError(
            "--weights oracle gives the corrupted modalities the lowest weight, and with "
            f"{'no corruption' if args.corruption is None else '--target all'} every modality "
            "is alike, so it would equal --weights uniform: give --corruption NAME with "
            "--target each or a modality name"
        )
    out = output_path(args, run_dir)
    report = evaluate_run(
        run_dir,
        args.corruption,
        severities,
        args.target,
        args.seed,
        args.batch_size,
        weights=args.weights,
        data=Path(args.data) if args.data else None,
        data_root=Path(args.data_root) if args.data_root else None,
    )
    write_json(out, report)
    print(format_table(report))
    print(f"-> {out}")
    return 0
