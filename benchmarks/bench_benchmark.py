"""Wall time of the quick benchmark against one static training run, measured in the same session
(issue 12: <= 6x), and fair sharing: two copies of the quick benchmark started together each take
<= 2.5x the time of one alone.

Everything runs as a user would run it, through the command line, in fresh folders:

1. ``robustfusion train --dataset mfeat --method static --epochs 30 --seed 0`` (the reference run);
2. ``robustfusion benchmark --quick --dataset mfeat --methods static,pe,tmc,qmf --seeds 0,1,2``;
3. two copies of (2) started at the same moment.

Run it alone on the machine (nothing else running); it prints each wall time, the two ratios and
the peak resident memory (RSS) of the children, and writes them as JSON with ``--out``.

    python benchmarks/bench_benchmark.py --out bench_benchmark.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "robustfusion.cli"]
QUICK = ["benchmark", "--quick", "--dataset", "mfeat", "--methods", "static,pe,tmc,qmf"]


def _timed(commands: list[list[str]]) -> list[float]:
    """Start every command at once; the wall time of each (seconds)."""
    started = time.perf_counter()
    processes = [
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for command in commands
    ]
    times = []
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(process.args)} failed:\n{err}")
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the quick benchmark")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of every run")
    parser.add_argument(
        "--extra", default="", help="extra flags for the benchmark, e.g. '--jobs 1'"
    )
    parser.add_argument("--out", type=Path, help="JSON file for the figures")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        epochs = ["--epochs", str(args.epochs)]
        static = CLI + ["train", "--dataset", "mfeat", "--method", "static", "--seed", "0",
                        "--no-progress", "--out", str(root / "static"), *epochs]  # fmt: skip
        quick = [*CLI, *QUICK, "--seeds", args.seeds, "--no-progress", *epochs, *args.extra.split()]
        (one_static,) = _timed([static])
        (one_quick,) = _timed([quick + ["--out", str(root / "quick")]])
        together = _timed([quick + ["--out", str(root / f"pair{i}")] for i in range(2)])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figures = {
        "cores": len(os.sched_getaffinity(0)),
        "static_run_s": round(one_static, 2),
        "quick_benchmark_s": round(one_quick, 2),
        "quick_over_static": round(one_quick / one_static, 2),
        "pair_s": [round(t, 2) for t in together],
        "pair_over_alone": [round(t / one_quick, 2) for t in together],
        "peak_child_rss_mib": round(peak, 1),
        "command": " ".join(quick[2:]),
    }
    print(json.dumps(figures, indent=2))
    print(
        f"quick benchmark / one static run: {figures['quick_over_static']}x (target <= 6); "
        f"two at once / one alone: {', '.join(f'{r}x' for r in figures['pair_over_alone'])} "
        "(target <= 2.5)"
    )
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
