"""The task interface: what a target is, how it is batched, learned, scored and selected on.

A task is registered once (:data:`robustfusion.registry.TASKS`) and every layer asks it instead of
assuming one label per sample: :func:`robustfusion.data.collate` batches targets with
:meth:`Task.collate_targets`, methods build their output head with :meth:`Task.build_head` and
their loss with :meth:`Task.loss`, the trainer selects checkpoints on
:meth:`Task.selection_counts` / :meth:`Task.selection_score`, evaluation streams a
:meth:`Task.meter` over the whole test set, and the benchmark and report read the task's
:attr:`Task.metrics` (``results.csv`` columns, table headings, directions and digits).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from torch import Tensor, nn


@dataclass(frozen=True)
class MetricSpec:
    """One figure a task reports: ``name`` is its key in evaluation results and its
    ``results.csv`` column; ``title`` its heading in tables; ``higher_is_better`` its direction;
    ``digits`` the decimals a table shows (as a fraction, e.g. ``0.9731``)."""

    name: str
    title: str
    higher_is_better: bool = True
    digits: int = 4


class Meter(Protocol):
    """Metrics accumulated over a whole evaluation set (never averaged per batch)."""

    def update(self, logits: Tensor, target: Tensor) -> None: ...

    def compute(self) -> dict[str, Any]: ...

    def primary(self) -> float:
        """The task's primary metric alone (unimodal heads report only it)."""
        ...


class Task:
    """A kind of prediction. Subclasses set the class attributes and implement the methods."""

    #: Registered name (``classification``, ``segmentation``).
    name: ClassVar[str]
    #: The features its output heads read: ``vector`` (``[B, D]``) or ``map`` (``[B, C, h, w]``).
    feature_kind: ClassVar[str]
    #: Every scalar metric the task reports, in the order ``results.csv`` and tables show them.
    metrics: ClassVar[tuple[MetricSpec, ...]]
    #: The metric robustness summaries (nAUC, PCR, claims) and unimodal figures are computed on.
    primary: ClassVar[str]
    #: The validation metric a checkpoint is selected on (logged as ``val_<name>``).
    selection_metric: ClassVar[str]
    #: The key of the selected epoch's validation figure in a run's ``metrics.json``.
    selection_key: ClassVar[str]
    #: Target value that is never learned nor scored (``None``: every target counts).
    ignore_index: ClassVar[int | None] = None

    @property
    def primary_spec(self) -> MetricSpec:
        return self.metric(self.primary)

    def metric(self, name: str) -> MetricSpec:
        for spec in self.metrics:
            if spec.name == name:
                return spec
        raise KeyError(f"task {self.name!r} has no metric {name!r}")

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.metrics)

    #: Short name of the unimodal heads' :attr:`primary` in plain-text tables (``acc[rgb]``) and,
    #: as ``u<label>_<modality>``, in ``results.csv`` columns.
    unimodal_label: ClassVar[str]

    @property
    def unimodal_prefix(self) -> str:
        """Prefix of the ``results.csv`` columns of the unimodal figures (``uacc_``)."""
        return f"u{self.unimodal_label}_"

    @property
    def unimodal_key(self) -> str:
        """Key of the per-modality figures of unimodal heads in evaluation results."""
        return f"unimodal_{self.primary}"

    def summary_line(self, metrics: Mapping[str, Any]) -> str:
        """``test accuracy 0.9731  macro-F1 0.9700  ECE 0.0123  (best epoch 3, val accuracy
        0.9800)``: a finished training's figures in one line."""
        test = "  ".join(f"{spec.title} {float(metrics[spec.name]):.4f}" for spec in self.metrics)
        line = f"test {test}"
        if "best_epoch" in metrics and self.selection_key in metrics:
            line += (
                f"  (best epoch {metrics['best_epoch']}, val {self.primary_spec.title} "
                f"{float(metrics[self.selection_key]):.4f})"
            )
        return line

    def result_columns(self, modalities: Sequence[str]) -> list[str]:
        """The task's columns of ``results.csv`` after the cell's identity: its metrics, then
        (after the shared ``view``, ``num_samples``, ``config_hash``) mean weights and unimodal
        figures per modality (see :mod:`robustfusion.evaluation.results`)."""
        return [
            *self.metric_names,
            "view",
            "num_samples",
            "config_hash",
            *(f"weight_{m}" for m in modalities),
            *(f"{self.unimodal_prefix}{m}" for m in modalities),
        ]

    def flat_row(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """An evaluation's result as ``results.csv`` columns (missing metrics: ``nan``)."""
        row: dict[str, Any] = {k: metrics.get(k, float("nan")) for k in self.metric_names}
        row["num_samples"] = metrics.get("num_samples", "")
        for m, value in (metrics.get("mean_weight") or {}).items():
            row[f"weight_{m}"] = float(value)
        for m, value in (metrics.get(self.unimodal_key) or {}).items():
            row[f"{self.unimodal_prefix}{m}"] = float(value)
        return row

    def is_target(self, value: object) -> bool:
        """Whether one sample's target (as a dataset item holds it) is of this task."""
        raise NotImplementedError  # pragma: no cover - interface

    def collate_targets(self, values: Sequence[Any]) -> Tensor:
        """The targets of a batch's samples as one tensor."""
        raise NotImplementedError  # pragma: no cover - interface

    def target_shape(self, input_shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, ...]:
        """Per-sample target shape for a model with these per-sample input shapes."""
        raise NotImplementedError  # pragma: no cover - interface

    def build_head(self, in_dim: int, num_classes: int, target_shape: tuple[int, ...]) -> nn.Module:
        """The output head from fused features (``[B, in_dim]`` or ``[B, in_dim, h, w]``) to
        logits in the task's layout."""
        raise NotImplementedError  # pragma: no cover - interface

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """The default training loss of ``logits`` against ``target`` (the task's ignore index
        excluded)."""
        raise NotImplementedError  # pragma: no cover - interface

    def meter(self, num_classes: int) -> Meter:
        """A fresh accumulator of :attr:`metrics` over an evaluation set."""
        raise NotImplementedError  # pragma: no cover - interface

    def selection_counts(self, logits: Tensor, target: Tensor, num_classes: int) -> Tensor:
        """Sufficient statistics of :attr:`selection_metric` for one batch: a float64 tensor
        that is summed over batches and processes."""
        raise NotImplementedError  # pragma: no cover - interface

    def selection_score(self, counts: Tensor) -> float:
        """:attr:`selection_metric` from summed :meth:`selection_counts` (higher is better)."""
        raise NotImplementedError  # pragma: no cover - interface


def task_of(name: str) -> Task:
    """The registered task ``name`` (unknown names raise ``UnknownNameError``)."""
    from robustfusion.registry import TASKS

    return TASKS.get(name)
