"""How far DMS's per-view embeddings sit from each other and from the fused one, on clean test data.

For each benchmark folder given and each DMS label, over the runs ``runs/<label>-s<seed>`` and
their clean test split: the mean over samples and views of ``‖z_m − z‖ / ‖z_m‖`` (``z = Σ_m w_m z_m``,
the fused shared embedding) and the mean cosine between two different views' embeddings
``z_m``, ``z_k``. notes/issue-20.md, step 16, reads the weight-consistency loss's effect from it::

    python scripts/dms_view_agreement.py runs/sensors/wdbc --labels dms,dms:consistency_reduction=mean
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from torch.nn import functional as F

from robustfusion.evaluation.evaluate import test_batches
from robustfusion.evaluation.variants import parse_variant
from robustfusion.training.run import load_run


@torch.no_grad()
def agreement(run: Path) -> tuple[float, float]:
    """``(mean ‖z_m − z‖ / mean ‖z_m‖, mean cosine between two views' z_m)`` of one DMS run."""
    model, splits, _ = load_run(run)
    distances, norms, cosines = [], [], []
    for batch in test_batches(splits.test):
        output = model(batch)
        shared = output.extras.get("shared")
        if shared is None or output.weights is None or shared.dim() != 3:
            raise SystemExit(f"{run}: not a DMS run on vectors (no [B, M, D] shared embeddings)")
        if not all(bool(mask.all()) for mask in batch.present.values()):
            raise SystemExit(f"{run}: the test split has missing modalities")
        fused = (output.weights.unsqueeze(-1) * shared).sum(1, keepdim=True)
        distances.append((shared - fused).norm(dim=-1).mean(1))
        norms.append(shared.norm(dim=-1).mean(1))
        unit = F.normalize(shared, dim=-1)
        views = shared.shape[1]
        pairs = (unit @ unit.transpose(1, 2)).sum((1, 2)) - views
        cosines.append(pairs / (views * (views - 1)))
    ratio = float(torch.cat(distances).mean() / torch.cat(norms).mean())
    return ratio, float(torch.cat(cosines).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="benchmark folders")
    parser.add_argument("--labels", default="dms", help="comma-separated DMS method labels")
    args = parser.parse_args()
    print("| benchmark | label | ‖z_m − z‖ / ‖z_m‖ | cos(z_m, z_k) | seeds |")
    print("|---|---|---|---|---|")
    for folder in args.folders:
        for label in args.labels.split(","):
            name = parse_variant(label).folder_name()
            runs = sorted((folder / "runs").glob(f"{name}-s*"))
            if not runs:
                raise SystemExit(f"{folder}/runs has no {name}-s* folder: run the benchmark first")
            ratios, cosines = zip(*(agreement(run) for run in runs), strict=True)
            print(
                f"| {folder.name} | {label} | {statistics.mean(ratios):.3f} | "
                f"{statistics.mean(cosines):+.3f} | {len(runs)} |"
            )


if __name__ == "__main__":
    main()
