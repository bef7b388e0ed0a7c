"""Do parallel training processes thrash when each uses several intra-op threads?

Launches ``--jobs`` worker processes at once, each training the same model (``build_model``,
plain PyTorch loop, fixed number of steps) with a given thread count and OpenMP environment, and
reports the time until all have finished, as a ratio to the first setting measured in the same
run (``jobs x 1 thread``). Settings: 1 thread each; ``cores`` threads each (torch's default);
the same with ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep instead of spinning); and
``threads_per_worker(jobs)`` from :mod:`robustfusion.threads`. Rounds alternate the settings.

    python benchmarks/bench_threads.py                       # mfeat, 2 jobs
    python benchmarks/bench_threads.py --dataset avdigits --steps 60
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

from robustfusion.threads import available_cores, threads_per_worker


def worker(args: argparse.Namespace) -> None:
    """Train ``args.steps`` steps with ``args.threads`` threads; print the seconds it took."""
    from robustfusion.training.build import build_model, load_data
    from robustfusion.training.config import TrainConfig

    torch.set_num_threads(args.threads)
    config = TrainConfig(dataset=args.dataset, method="static", out="unused")
    splits = load_data(config)
    torch.manual_seed(0)
    model = build_model(config, splits.info)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = len(splits.train)
    batches = [
        splits.train.__getitems__([(i * 64 + j) % n for j in range(64)])
        for i in range(min(args.steps, 20))
    ]
    started = time.perf_counter()
    for step in range(args.steps):
        batch = batches[step % len(batches)]
        loss = torch.stack(list(model.method.losses(model(batch), batch).values())).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    print(json.dumps({"seconds": time.perf_counter() - started}))


def run_setting(args: argparse.Namespace, threads: int, env: dict[str, str]) -> float:
    """Start ``args.jobs`` workers together; the seconds until the slowest finished training."""
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--dataset",
        args.dataset,
        "--steps",
        str(args.steps),
        "--threads",
        str(threads),
    ]
    full_env = {**os.environ, "OMP_NUM_THREADS": str(threads), **env}
    procs = [
        subprocess.Popen(command, env=full_env, stdout=subprocess.PIPE, text=True)
        for _ in range(args.jobs)
    ]
    seconds = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"error: a worker failed (exit {proc.returncode})")
        seconds.append(json.loads(out.strip().splitlines()[-1])["seconds"])
    return max(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mfeat")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    cores = available_cores()
    share = threads_per_worker(args.jobs, cores)
    settings: dict[str, tuple[int, dict[str, str]]] = {
        f"{args.jobs} jobs x 1 thread": (1, {}),
        f"{args.jobs} jobs x {cores} threads": (cores, {}),
        f"{args.jobs} jobs x {cores} threads, OMP_WAIT_POLICY=PASSIVE": (
            cores,
            {"OMP_WAIT_POLICY": "PASSIVE"},
        ),
        f"{args.jobs} jobs x threads_per_worker={share}": (share, {}),
    }
    times: dict[str, list[float]] = {name: [] for name in settings}
    for _ in range(args.rounds):
        for name, (threads, env) in settings.items():
            times[name].append(run_setting(args, threads, env))
            print(f"{name:>50}: {times[name][-1]:.2f} s", flush=True)
    base = statistics.median(times[next(iter(settings))])
    result: dict[str, Any] = {
        "dataset": args.dataset,
        "jobs": args.jobs,
        "cores": cores,
        "steps": args.steps,
        "load_average_at_end": os.getloadavg()[0],
        "seconds": times,
        "ratio_to_first": {k: round(statistics.median(v) / base, 3) for k, v in times.items()},
    }
    for name, ratio in result["ratio_to_first"].items():
        print(f"{name:>50}: {ratio:.3f}x the time of the first")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
