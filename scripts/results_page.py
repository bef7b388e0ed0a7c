"""Write ``docs/results.md`` from benchmark folders, optionally running the benchmarks first.

    # run the benchmarks (timed together), then write the page:
    python scripts/results_page.py --out docs/results.md \\
        --run "robustfusion benchmark --dataset mfeat --methods static,udml,tmc --seeds 0,1,2 \\
               --out runs/results/mfeat" \\
        runs/results/mfeat

    # or from finished folders, giving the command and wall time yourself:
    python scripts/results_page.py --out docs/results.md --command "..." --wall-seconds 1234 \\
        runs/results/mfeat runs/results/avdigits

Each ``--run`` command is run in order through the shell; the page records them all and their
summed wall time. The page's figures are copied to ``docs/results/<dataset>/``. The "do the
weights matter?" columns appear for benchmarks run with weight controls
(``BenchmarkConfig.weight_controls``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from robustfusion.evaluation.report import write_results_page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="benchmark folders, one per section")
    parser.add_argument("--out", type=Path, default=Path("docs/results.md"))
    parser.add_argument("--run", action="append", default=[], help="a command to run and time")
    parser.add_argument("--command", help="the command that produced the folders (without --run)")
    parser.add_argument("--wall-seconds", type=float, help="its wall time (without --run)")
    args = parser.parse_args(argv)
    if args.run:
        start = time.perf_counter()
        for command in args.run:
            print(f"$ {command}", flush=True)
            subprocess.run(command, shell=True, check=True)
        wall = time.perf_counter() - start
        command = "\n".join(" ".join(c.split()) for c in args.run)
    elif args.command is not None and args.wall_seconds is not None:
        command, wall = args.command, args.wall_seconds
    else:
        parser.error("give --run COMMAND, or both --command and --wall-seconds")
    print(write_results_page(args.folders, args.out, command, wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
