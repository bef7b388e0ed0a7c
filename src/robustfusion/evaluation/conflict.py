"""RCML's conflictive test set (Xu et al., "Reliable Conflictive Multi-View Learning", AAAI 2024;
the authors' ``data.py``, ``MultiViewDataset.postprocessing``) as a seeded evaluation protocol.

The authors train on clean data and test on a copy of the test split in which

1. **noise** (``addNoise``): ``int(noise_fraction * N)`` samples (default 10 %) chosen without
   replacement get additive Gaussian noise of std ``noise_std`` (default 0.5, in the units of the
   stored data: [0, 1] after their MinMax scaling) on ``r`` of their views, ``r`` uniform in
   ``0 .. V-1`` (``np.random.randint(num_views)``: one sample in ``V`` keeps every view clean)
   and the ``r`` views drawn without replacement;
2. then **conflict** (``addConflict``): ``int(conflict_fraction * N)`` samples (default 40 %),
   drawn independently of the first set, get one view, uniform among their views, replaced by the
   same view of a sample of class ``(y + 1) mod C``.

Everything is a function of ``(seed, position in the split)`` through :mod:`robustfusion.rng`
streams (``conflict-noise-select``, ``conflict-noise-count``, ``conflict-noise-views``,
``conflict-noise`` + modality, ``conflict-select``, ``conflict-view``, ``conflict-donor``): the
same seed gives the same conflictive test set whatever the batching, the order or the device.
The sets of samples have exactly the authors' sizes (the ``k`` positions with the smallest
seeded keys).

Deviations from the authors' code [ours], all documented:

* the donor of class ``c``: ``donor="first"`` (default) is the first sample of class ``c`` in the
  evaluated split's order, one fixed donor per class as in the code; but the code takes the first
  sample of class ``c`` in the *whole* dataset (often a training sample) and holds it as a live
  row (if that sample is itself a test sample that was noised or replaced earlier, its noisy or
  replaced values are what gets copied). Ours copies the donor's clean values and never leaves
  the split. ``donor="random"``: a seeded sample of class ``c`` per conflictive sample.
* absent modalities (the authors have none) are never noised, never replaced and never donated:
  the replaced view is drawn among the sample's present views, and a donor that lacks it leaves
  the sample as it is, as does a class ``(y + 1) mod C`` with no sample in the split.
* the authors draw from NumPy's global, unseeded generator: their conflictive set changes with
  every run. Ours is seeded; averaging over several ``seeds`` plays the role of their repeats.

``Batch.corrupted`` marks every noised or replaced view (the oracle weights read it). Run it on a
finished run folder with::

    python -m robustfusion.evaluation.conflict RUN_DIR [RUN_DIR ...] [--draws 5] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from robustfusion.data import MultimodalDataset, collate
from robustfusion.errors import ConfigError, RobustFusionError
from robustfusion.rng import stream
from robustfusion.types import Batch

#: Where the donor of a conflictive view comes from (see the module docstring).
DONORS = ("first", "random")


@dataclass(frozen=True)
class ConflictProtocol:
    """The protocol's settings; the defaults are the authors' ``main.py``
    (``postprocessing(sigma=0.5, ratio_noise=0.1, ratio_conflict=0.4)``)."""

    noise_fraction: float = 0.1
    noise_std: float = 0.5
    conflict_fraction: float = 0.4
    donor: str = "first"

    def __post_init__(self) -> None:
        for name in ("noise_fraction", "conflict_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"conflict protocol: {name} must be in [0, 1], got {value}")
        if not self.noise_std >= 0.0:
            raise ConfigError(f"conflict protocol: noise_std must be >= 0, got {self.noise_std}")
        if self.donor not in DONORS:
            raise ConfigError(
                f"conflict protocol: unknown donor {self.donor!r}; choose one of {', '.join(DONORS)}"
            )


@dataclass(frozen=True)
class ConflictPlan:
    """What the protocol does to each sample of a split (rows = positions in the split).

    ``noisy``: ``BoolTensor[N, V]``, the views that get noise; ``view``: ``LongTensor[N]``, the
    view replaced (-1: none); ``donor``: ``LongTensor[N]``, the position of the donor (-1: none).
    """

    noisy: Tensor
    view: Tensor
    donor: Tensor


def _chosen(count: int, fraction: float, seed: int, name: str) -> Tensor:
    """``BoolTensor[count]``: exactly ``int(fraction * count)`` positions, seeded."""
    chosen = torch.zeros(count, dtype=torch.bool)
    k = int(fraction * count)
    if k == 0:
        return chosen
    keys = stream(seed, name).uniform(torch.arange(count), dtype=torch.float64)
    chosen[torch.argsort(keys, stable=True)[:k]] = True
    return chosen


def plan_conflict(
    targets: Tensor,
    present: Tensor,
    num_classes: int,
    protocol: ConflictProtocol = ConflictProtocol(),
    seed: int = 0,
) -> ConflictPlan:
    """The plan for a split with labels ``targets`` ``[N]`` and presence ``present`` ``[N, V]``."""
    targets = targets.long().cpu()
    present = present.bool().cpu()
    count, views = present.shape
    if count == 0:
        none = torch.zeros(0, dtype=torch.long)
        return ConflictPlan(noisy=present.clone(), view=none, donor=none.clone())
    index = torch.arange(count)
    # 1. noise: r ~ U{0, .., V-1} views, drawn without replacement (the r smallest keys)
    noise_rows = _chosen(count, protocol.noise_fraction, seed, "conflict-noise-select")
    how_many = stream(seed, "conflict-noise-count").integers(index, views)
    keys = stream(seed, "conflict-noise-views").uniform(index, views, dtype=torch.float64)
    rank = torch.argsort(torch.argsort(keys, dim=1, stable=True), dim=1, stable=True)
    noisy = (rank < how_many.unsqueeze(1)) & noise_rows.unsqueeze(1) & present
    if protocol.noise_std == 0.0:
        noisy = torch.zeros_like(noisy)
    # 2. conflict: one present view, replaced by that view of a sample of class (y + 1) mod C
    conflict_rows = _chosen(count, protocol.conflict_fraction, seed, "conflict-select")
    available = present.sum(dim=1)
    pick = stream(seed, "conflict-view").integers(index, available.clamp_min(1))
    view = ((present.long().cumsum(dim=1) - 1 == pick.unsqueeze(1)) & present).long().argmax(1)
    order = torch.argsort(targets, stable=True)  # positions grouped by class, split order kept
    sizes = torch.bincount(targets, minlength=num_classes)
    starts = torch.cumsum(sizes, dim=0) - sizes
    wanted = (targets + 1) % num_classes
    if protocol.donor == "first":
        offset = torch.zeros_like(targets)
    else:
        offset = stream(seed, "conflict-donor").integers(index, sizes[wanted].clamp_min(1))
    donor = order[(starts[wanted] + offset).clamp_max(count - 1)]
    usable = conflict_rows & (available > 0) & (sizes[wanted] > 0) & present[donor, view]
    return ConflictPlan(
        noisy=noisy,
        view=torch.where(usable, view, torch.full_like(view, -1)),
        donor=torch.where(usable, donor, torch.full_like(donor, -1)),
    )


def _split_batch(dataset: MultimodalDataset) -> Batch:
    """The whole split as one batch (in-memory datasets fetch it in one gather)."""
    positions = list(range(len(dataset)))  # type: ignore[arg-type]
    getitems = getattr(dataset, "__getitems__", None)
    return collate(getitems(positions) if getitems else [dataset[i] for i in positions])


class ConflictTransform:
    """The protocol as a batch transform for one split (``Batch.index`` = positions in it).

    Usable wherever a corruption transform is (:func:`~robustfusion.evaluation.evaluate.evaluate_many`,
    :class:`~robustfusion.evaluation.grids.TransformedDataset`).
    """

    def __init__(
        self,
        dataset: MultimodalDataset,
        num_classes: int,
        protocol: ConflictProtocol = ConflictProtocol(),
        seed: int = 0,
    ) -> None:
        whole = _split_batch(dataset)
        self.modalities = whole.modalities
        self.protocol = protocol
        self.seed = int(seed)
        self.plan = plan_conflict(whole.target, whole.present_matrix(), num_classes, protocol, seed)
        rows = self.plan.view >= 0
        donors = self.plan.donor.clamp_min(0)
        #: per split position, the donated values of each modality (rows without a conflict: 0)
        self.donated = {
            m: torch.where(
                (rows & (self.plan.view == i)).view((-1,) + (1,) * (whole.inputs[m].dim() - 1)),
                whole.inputs[m][donors],
                torch.zeros_like(whole.inputs[m]),
            )
            for i, m in enumerate(self.modalities)
        }

    def __call__(self, batch: Batch) -> Batch:
        position = batch.index.long().cpu()
        inputs = dict(batch.inputs)
        corrupted = dict(batch.corrupted)
        for i, m in enumerate(self.modalities):
            x = inputs[m]
            noisy = self.plan.noisy[position, i]
            replaced = self.plan.view[position] == i
            changed = noisy | replaced
            if not bool(changed.any()):
                continue
            shape = (-1,) + (1,) * (x.dim() - 1)
            noise = stream(self.seed, "conflict-noise", m).normal(
                position.to(x.device), x.shape[1:], dtype=x.dtype
            )
            x = x + (self.protocol.noise_std * noise) * noisy.to(x.device, x.dtype).view(shape)
            donated = self.donated[m][position].to(x.device, x.dtype)
            x = torch.where(replaced.to(x.device).view(shape), donated, x)
            inputs[m] = x
            before = corrupted.get(m, torch.zeros_like(batch.present[m], dtype=torch.bool))
            corrupted[m] = before | changed.to(before.device)
        return batch.replace(inputs=inputs, corrupted=corrupted)


def evaluate_conflict(
    run_dir: Path,
    protocol: ConflictProtocol = ConflictProtocol(),
    seeds: Sequence[int] = (0,),
    weights: str = "learned",
) -> dict[str, Any]:
    """Normal and conflictive test metrics of a finished run (conflictive: mean over ``seeds``)."""
    from robustfusion.evaluation.benchmark import average_metrics
    from robustfusion.evaluation.evaluate import evaluate_many, test_batches
    from robustfusion.training.run import load_run

    if not seeds:
        raise ConfigError("conflict protocol: give at least one seed")
    model, splits, config = load_run(Path(run_dir))
    info = splits.info
    batches = test_batches(splits.test, config.eval_batch_size)
    transforms = [None] + [
        ConflictTransform(splits.test, info.num_classes, protocol, s) for s in seeds
    ]
    results = evaluate_many(model, batches, info, transforms, weights=weights, seed=seeds[0])
    return {
        "run": str(run_dir),
        "dataset": info.name,
        "method": config.method,
        "method_options": config.method_options,
        "seed": config.seed,
        "weights": weights,
        "protocol": asdict(protocol),
        "conflict_seeds": list(seeds),
        "normal": results[0],
        "conflict": average_metrics(results[1:]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m robustfusion.evaluation.conflict RUN_DIR ...``: a table, and JSON with ``--out``."""
    parser = argparse.ArgumentParser(
        prog="python -m robustfusion.evaluation.conflict",
        description="RCML's conflictive test (noise on 10%, a view of class y+1 on 40%) of runs",
    )
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders")
    parser.add_argument("--draws", type=int, default=1, help="conflictive test sets to average")
    parser.add_argument("--eval-seed", type=int, default=0, help="seed of the first draw")
    parser.add_argument("--weights", default="learned", help="learned, uniform or oracle")
    parser.add_argument("--noise-fraction", type=float, default=0.1)
    parser.add_argument("--noise-std", type=float, default=0.5)
    parser.add_argument("--conflict-fraction", type=float, default=0.4)
    parser.add_argument("--donor", default="first", help="first (the authors') or random")
    parser.add_argument("--out", type=Path, help="write every result to this JSON file")
    args = parser.parse_args(argv)
    try:
        if args.draws < 1:
            raise ConfigError(f"--draws must be at least 1, got {args.draws}")
        protocol = ConflictProtocol(
            args.noise_fraction, args.noise_std, args.conflict_fraction, args.donor
        )
        seeds = [args.eval_seed + k for k in range(args.draws)]
        rows = [evaluate_conflict(run, protocol, seeds, args.weights) for run in args.runs]
    except RobustFusionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("run\tmethod\tseed\tnormal\tconflictive")
    for row in rows:
        print(
            f"{row['run']}\t{row['method']}\t{row['seed']}\t"
            f"{row['normal']['accuracy']:.4f}\t{row['conflict']['accuracy']:.4f}"
        )
    if args.out is not None:
        from robustfusion.atomic import write_json

        write_json(args.out, {"results": rows})
    return 0


if __name__ == "__main__":  # pragma: no cover - command line
    raise SystemExit(main())
