"""Evaluate a model on a split, clean or corrupted, with its own or swapped modality weights.

:func:`evaluate_model` reads a dataset; :func:`evaluate_batches` works on batches already in memory
(the benchmark fetches a run's test split once and evaluates every cell of its grid on it).
Sweeping a finished run folder is :func:`robustfusion.evaluation.sweep.evaluate_run`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from robustfusion.data import DatasetInfo, MultimodalDataset, collate
from robustfusion.errors import ConfigError
from robustfusion.methods.base import WEIGHT_MODES
from robustfusion.model import MultimodalModel
from robustfusion.tasks import task_of
from robustfusion.tasks.base import Meter
from robustfusion.training.seeding import seed_all
from robustfusion.types import Batch


def test_batches(dataset: MultimodalDataset, batch_size: int = 256) -> list[Batch]:
    """The whole of ``dataset`` as a list of batches, in order (fetched once, reused per cell)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    return list(loader)


@torch.no_grad()
def evaluate_model(
    model: MultimodalModel,
    dataset: MultimodalDataset,
    info: DatasetInfo,
    *,
    corruption: str | None = None,
    severity: float = 0.0,
    target: str = "all",
    seed: int = 0,
    batch_size: int = 256,
    weights: str = "learned",
) -> dict[str, Any]:
    """Metrics of ``model`` on ``dataset``, optionally corrupted (``corrupt(batch, info, ...)``).

    Returns the task's metrics of the fused logits (:attr:`robustfusion.tasks.base.Task.metrics`:
    ``accuracy``, ``macro_f1``, ``ece`` (15 bins) for classification; ``miou``,
    ``pixel_accuracy``, ``mean_accuracy`` and ``per_class_iou`` for segmentation), accumulated over
    the whole set; ``unimodal_<primary>`` (``unimodal_accuracy``, ``unimodal_miou``) per modality
    that has a unimodal head (over the samples where that modality is present after corruption);
    ``mean_weight`` per modality (mean of ``FusionOutput.weights``); and ``num_samples``. Corruptions are deterministic in ``(seed, severity, sample index)``.
    ``weights`` swaps the modality weights the method fuses with (``learned``, ``uniform`` or
    ``oracle``; see :data:`robustfusion.methods.base.WEIGHT_MODES`): the same checkpoint with its
    own weights, uniform ones, or the corrupted modalities at the lowest weight.
    """
    transform = None
    if corruption is not None:
        from robustfusion.data.corruptions import corrupt

        def transform(batch: Batch) -> Batch:
            return corrupt(batch, info, corruption, severity, target=target, seed=seed)

    return evaluate_batches(
        model, test_batches(dataset, batch_size), info, transform, weights=weights, seed=seed
    )


#: The most rows one forward pass takes when several corruptions are evaluated together.
MAX_ROWS_PER_PASS = 4096
#: The most input values (all modalities) one such pass takes. Larger passes leave the caches:
#: a CNN forward on avdigits' spectrograms costs 1.2-3.4x more per row at 4096 rows than in
#: passes of one 256-row batch, what this cap gives there (two runs, 1 thread,
#: ``benchmarks/bench_eval.py``).
MAX_VALUES_PER_PASS = 1 << 19


def copies_per_pass(batch_rows: int, values_per_row: int) -> int:
    """How many transformed copies of a ``batch_rows``-row batch one forward pass takes: as many
    as :data:`MAX_ROWS_PER_PASS` and :data:`MAX_VALUES_PER_PASS` allow, at least one."""
    rows = max(batch_rows, 1)
    by_values = MAX_VALUES_PER_PASS // max(rows * values_per_row, 1)
    return max(1, min(MAX_ROWS_PER_PASS // rows, by_values))


@torch.no_grad()
def evaluate_batches(
    model: MultimodalModel,
    batches: Sequence[Batch],
    info: DatasetInfo,
    transform: Callable[[Batch], Batch] | None = None,
    *,
    weights: str = "learned",
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`evaluate_model` on batches in memory; ``transform`` corrupts each batch first."""
    return evaluate_many(model, batches, info, [transform], weights=weights, seed=seed)[0]


@torch.no_grad()
def evaluate_many(
    model: MultimodalModel,
    batches: Sequence[Batch],
    info: DatasetInfo,
    transforms: Sequence[Callable[[Batch], Batch] | None],
    *,
    weights: str = "learned",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The metrics of :func:`evaluate_model` for each of ``transforms`` (``None``: clean data).

    One pass over ``batches``: each batch is transformed by every transform and the copies go
    through the model together (at most :data:`MAX_ROWS_PER_PASS` rows and
    :data:`MAX_VALUES_PER_PASS` input values per forward, never less than one batch), so the
    severities of a corruption cost one pass over the cached test tensors.
    """
    if weights not in WEIGHT_MODES:
        raise ConfigError(f"unknown weights {weights!r}: choose one of {', '.join(WEIGHT_MODES)}")
    if not transforms:
        return []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    seed_all(seed)
    method = model.method
    collected = [_Collected(info) for _ in transforms]
    try:
        for batch in batches:
            size = batch.batch_size
            values_per_row = sum(x[0].numel() for x in batch.inputs.values())
            per_pass = copies_per_pass(size, values_per_row)
            for start in range(0, len(transforms), per_pass):
                chunk = range(start, min(start + per_pass, len(transforms)))
                copies = [batch if transforms[i] is None else transforms[i](batch) for i in chunk]
                joined = method.prepare_batch(_concat(copies).to(device), False)
                oracle = weights == "oracle"
                method.set_weight_mode(
                    weights, joined.corrupted_matrix(method.modalities) if oracle else None
                )
                output = model(joined)
                for offset, i in enumerate(chunk):
                    rows = slice(offset * size, (offset + 1) * size)
                    collected[i].add(output, joined, rows)
    finally:
        method.set_weight_mode("learned")
        model.train(was_training)
    return [c.metrics(info.modality_names) for c in collected]


def _concat(batches: Sequence[Batch]) -> Batch:
    """One batch of several batches with the same modalities (a single batch passes through)."""
    if len(batches) == 1:
        return batches[0]
    first = batches[0]
    corrupted_names = {m for b in batches for m in b.corrupted}
    none = torch.zeros(first.batch_size, dtype=torch.bool, device=first.target.device)
    return Batch(
        inputs={m: torch.cat([b.inputs[m] for b in batches]) for m in first.modalities},
        present={m: torch.cat([b.present[m] for b in batches]) for m in first.modalities},
        target=torch.cat([b.target for b in batches]),
        index=torch.cat([b.index for b in batches]),
        corrupted={
            m: torch.cat([b.corrupted.get(m, none).to(none.device) for b in batches])
            for m in corrupted_names
        },
    )


class _Collected:
    """Outputs of one evaluation, streamed batch by batch into the task's meters."""

    def __init__(self, info: DatasetInfo) -> None:
        self.task = task_of(info.task)
        self.num_classes = info.num_classes
        self.fused = self.task.meter(info.num_classes)
        self.weights: list[Tensor] = []
        self.unimodal: dict[str, Meter] = {}
        self.modalities: tuple[str, ...] = ()
        self.count = 0

    def add(self, output: Any, batch: Batch, rows: slice) -> None:
        self.modalities = output.modalities
        target = batch.target[rows]
        self.fused.update(output.logits[rows], target)
        self.count += int(target.shape[0])
        self.weights.append(output.weights[rows].float().cpu())
        for name, head in output.unimodal_logits.items():
            seen = batch.present[name][rows].to(head.device)
            meter = self.unimodal.setdefault(name, self.task.meter(self.num_classes))
            meter.update(head[rows][seen], target[seen.to(target.device)])

    def metrics(self, default_modalities: tuple[str, ...]) -> dict[str, Any]:
        modalities = self.modalities or default_modalities
        weights = torch.cat(self.weights) if self.weights else torch.zeros(0, len(modalities))
        unimodal = {m: self.unimodal[m].primary() for m in modalities if m in self.unimodal}
        return {
            **self.fused.compute(),
            self.task.unimodal_key: unimodal,
            "mean_weight": {m: float(weights[:, i].mean()) for i, m in enumerate(modalities)},
            "num_samples": self.count,
        }
