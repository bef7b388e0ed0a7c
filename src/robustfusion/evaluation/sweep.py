"""Sweep the selected model of a finished run folder over corruption severities."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from robustfusion.data import DatasetInfo
from robustfusion.evaluation.evaluate import evaluate_many, test_batches
from robustfusion.training.run import load_run
from robustfusion.types import Batch


def corruptor(
    info: DatasetInfo, corruption: str | None, severity: float, target: str, seed: int
) -> Callable[[Batch], Batch] | None:
    """``batch -> corrupt(batch, ...)`` at one severity, or ``None`` for clean evaluation."""
    if corruption is None:
        return None
    from robustfusion.data.corruptions import corrupt

    def transform(batch: Batch) -> Batch:
        return corrupt(batch, info, corruption, severity, target=target, seed=seed)

    return transform


def evaluate_run(
    run_dir: Path,
    corruption: str | None = None,
    severities: Sequence[float] = (0.0,),
    target: str = "all",
    seed: int = 0,
    batch_size: int = 256,
    weights: str = "learned",
    data: Path | None = None,
    data_root: Path | None = None,
) -> dict[str, Any]:
    """Sweep the selected model of a finished run over ``severities`` on its test split.

    The test split is fetched once and every severity goes through the model in the same pass
    (:func:`~robustfusion.evaluation.evaluate.evaluate_many`), as in the benchmark. Returns the
    run's identity (dataset, method, fusion, training seed), the protocol (corruption, target,
    weights, evaluation seed) and ``results``: one entry per severity, in order. ``data`` and
    ``data_root`` point at a run's moved data (see :func:`~robustfusion.training.run.load_run`).
    """
    model, splits, config = load_run(Path(run_dir), data=data, data_root=data_root)
    info = splits.info
    batches = test_batches(splits.test, batch_size)
    transforms = [corruptor(info, corruption, float(s), target, seed) for s in severities]
    metrics = evaluate_many(model, batches, info, transforms, weights=weights, seed=seed)
    results = [{"severity": float(s), **m} for s, m in zip(severities, metrics, strict=True)]
    return {
        "run": str(Path(run_dir).resolve()),
        "dataset": info.name,
        "task": info.task,
        "method": config.method,
        "fusion": config.fusion,
        "train_seed": config.seed,
        "corruption": corruption or "none",
        "target": target,
        "weights": weights,
        "seed": seed,
        "split": "test",
        "results": results,
    }
