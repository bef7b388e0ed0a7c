"""Step time with glibc's default allocator settings against ``keep_freed_memory`` (issue 12).

The allocator is set once per process, so each setting runs in its own child processes,
alternating (default, kept, default, kept, ...) so that load on a shared machine hits both alike.
Every child builds the same models (seed 0) on the same data and times, per workload, the median
of ``--blocks`` blocks of ``--steps`` steps after a warm-up block:

* ``train:<method>``: training steps with every hook the trainer calls (as ``bench_udml.py``);
* ``infer:<method>``: inference passes (no gradient) over 256-row test batches.

Printed per workload: the ratio of the medians over children (default / kept: above 1 means
keeping freed memory is faster), the minor page faults per step and the peak RSS of each setting.
The values computed are the same under both settings (the allocator decides only where memory
lives); the children check that their losses agree.

    python benchmarks/bench_allocator.py --dataset mfeat
    python benchmarks/bench_allocator.py --dataset avdigits --workloads train:static train:udml
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = ("default", "kept")
WORKLOADS = ("train:static", "train:udml", "train:mwam", "infer:static", "infer:dms")


def _child(args: argparse.Namespace) -> dict[str, object]:
    """One process under one setting: per workload, the median step time and page faults."""
    from robustfusion.allocator import keep_freed_memory

    applied = keep_freed_memory() if args.child == "kept" else {}
    import torch
    from bench_udml import _block

    from robustfusion.data import collate, load_dataset
    from robustfusion.training.build import build_model
    from robustfusion.training.config import TrainConfig
    from robustfusion.training.optim import build_optimizer

    torch.set_num_threads(args.threads)
    splits = load_dataset(args.dataset, seed=0)
    test = splits.test
    batches = [
        collate(test.__getitems__(list(range(i, min(i + 256, len(test))))))
        for i in range(0, min(len(test), 1024), 256)
    ]
    out: dict[str, object] = {"applied": applied, "ms_per_step": {}, "faults_per_step": {}}
    checks: dict[str, float] = {}
    for workload in args.workloads:
        kind, method = workload.split(":")
        config = TrainConfig(dataset=args.dataset, method=method, out="unused")
        torch.manual_seed(0)
        model = build_model(config, splits.info)
        times: list[float] = []
        faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        if kind == "train":
            model.method.on_epoch_start(8, 10)
            optimizer = build_optimizer(model.parameters(), config)
            for block in range(args.blocks + 1):
                per_step, _ = _block(model, optimizer, splits.train, 64, args.steps, seed=block)
                if block:
                    times.append(per_step)
            checks[workload] = float(sum(p.double().sum() for p in model.parameters()))
        else:
            model.eval()
            torch.manual_seed(1)
            with torch.no_grad():
                for block in range(args.blocks + 1):
                    start = time.perf_counter()
                    for _ in range(args.steps):
                        for batch in batches:
                            logits = model(batch).logits
                    if block:
                        times.append((time.perf_counter() - start) / (args.steps * len(batches)))
            checks[workload] = float(logits.double().sum())
        steps = (args.blocks + 1) * args.steps * (1 if kind == "train" else len(batches))
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
        out["ms_per_step"][workload] = 1000 * statistics.median(times)  # type: ignore[index]
        out["faults_per_step"][workload] = faults / steps  # type: ignore[index]
    out["checks"] = checks
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mfeat")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=3, help="child processes per setting")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    parser.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(_child(args)))
        return

    runs: dict[str, list[dict]] = {setting: [] for setting in SETTINGS}
    for round_ in range(args.rounds):
        for setting in SETTINGS:
            environment = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            environment["ROBUSTFUSION_MALLOC"] = "default" if setting == "default" else ""
            command = [sys.executable, __file__, "--child", setting, "--dataset", args.dataset,
                       "--blocks", str(args.blocks), "--steps", str(args.steps),
                       "--threads", str(args.threads), "--workloads", *args.workloads]  # fmt: skip
            done = subprocess.run(command, env=environment, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"child ({setting}) failed:\n{done.stderr}")
            runs[setting].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"round {round_ + 1}/{args.rounds}, {setting}: done", file=sys.stderr)
    if runs["kept"][0]["applied"] == {}:
        print("note: keep_freed_memory() changed nothing here (not glibc?)", file=sys.stderr)
    same = all(r["checks"] == runs["default"][0]["checks"] for s in SETTINGS for r in runs[s])
    result: dict[str, object] = {"dataset": args.dataset, "threads": args.threads,
                                 "rounds": args.rounds, "same_values": same, "workloads": {}}  # fmt: skip
    for workload in args.workloads:
        ms = {s: statistics.median(r["ms_per_step"][workload] for r in runs[s]) for s in SETTINGS}
        faults = {
            s: statistics.median(r["faults_per_step"][workload] for r in runs[s]) for s in SETTINGS
        }
        each = {s: [r["ms_per_step"][workload] for r in runs[s]] for s in SETTINGS}
        result["workloads"][workload] = {  # type: ignore[index]
            "ms_per_step": ms,
            "ms_per_step_each_child": each,
            "default_over_kept": ms["default"] / ms["kept"],
            "minor_faults_per_step": faults,
        }
        print(
            f"{workload:>14}: default {ms['default']:7.2f} ms, kept {ms['kept']:7.2f} ms per step"
            f"  (default/kept {ms['default'] / ms['kept']:.2f}x; page faults per step"
            f" {faults['default']:.0f} vs {faults['kept']:.0f})"
        )
        for setting in SETTINGS:
            print(f"{'':>16}{setting:>7} children: " + ", ".join(f"{v:.2f}" for v in each[setting]))
    rss = {s: max(r["peak_rss_mib"] for r in runs[s]) for s in SETTINGS}
    result["peak_rss_mib"] = rss
    print(f"peak RSS: default {rss['default']:.0f} MiB, kept {rss['kept']:.0f} MiB;"
          f" same values under both: {same}")  # fmt: skip
    if args.out is not None:
        from robustfusion.atomic import write_json

        write_json(args.out, result)


if __name__ == "__main__":
    main()
