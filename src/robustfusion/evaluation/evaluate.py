"""Evaluate a model on a split, clean or corrupted, and sweep a finished run over severities."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from robustfusion.data import DatasetInfo, MultimodalDataset, collate
from robustfusion.evaluation.metrics import accuracy, ece, macro_f1
from robustfusion.model import MultimodalModel
from robustfusion.training.seeding import seed_all


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

    ``weights`` swaps the modality weights the method fuses with (``learned``, ``uniform`` or
    ``oracle``; see :data:`robustfusion.methods.base.WEIGHT_MODES`): the same checkpoint with its
    own weights, uniform ones, or the corrupted modalities at the lowest weight.

    Returns ``accuracy``, ``macro_f1``, ``ece`` (15 bins) of the fused logits; ``unimodal_accuracy``
    per modality that has a unimodal head (counted over the samples where that modality is
    present after corruption); ``mean_weight`` per modality (mean of ``FusionOutput.weights``);
    and ``num_samples``. Corruptions are deterministic in ``(seed, severity, sample index)``.
    """
    from robustfusion.methods.base import WEIGHT_MODES

    if weights not in WEIGHT_MODES:
        from robustfusion.errors import ConfigError

        raise ConfigError(f"unknown --weights {weights!r}: choose one of {', '.join(WEIGHT_MODES)}")
    corrupt = None
    if corruption is not None:
        from robustfusion.data.corruptions import corrupt

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    seed_all(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    logits: list[Tensor] = []
    targets: list[Tensor] = []
    used_weights: list[Tensor] = []
    unimodal: dict[str, list[Tensor]] = {}
    unimodal_present: dict[str, list[Tensor]] = {}
    modalities: tuple[str, ...] = info.modality_names
    for batch in loader:
        if corrupt is not None:
            batch = corrupt(batch, info, corruption, severity, target=target, seed=seed)
        batch = model.method.prepare_batch(batch.to(device), False)
        method = model.method
        corrupted = batch.corrupted_matrix(method.modalities) if weights == "oracle" else None
        method.set_weight_mode(weights, corrupted)
        try:
            output = model(batch)
        finally:
            method.set_weight_mode("learned")
        modalities = output.modalities
        logits.append(output.logits.float().cpu())
        targets.append(batch.target.cpu())
        used_weights.append(output.weights.float().cpu())
        for name, head in output.unimodal_logits.items():
            unimodal.setdefault(name, []).append(head.float().cpu())
            unimodal_present.setdefault(name, []).append(batch.present[name].cpu())
    model.train(was_training)

    all_logits, all_targets = torch.cat(logits), torch.cat(targets)
    all_weights = torch.cat(used_weights)
    unimodal_accuracy = {}
    for name in (m for m in modalities if m in unimodal):
        seen = torch.cat(unimodal_present[name])
        unimodal_accuracy[name] = accuracy(torch.cat(unimodal[name])[seen], all_targets[seen])
    return {
        "accuracy": accuracy(all_logits, all_targets),
        "macro_f1": macro_f1(all_logits, all_targets),
        "ece": ece(all_logits, all_targets),
        "unimodal_accuracy": unimodal_accuracy,
        "mean_weight": {m: float(all_weights[:, i].mean()) for i, m in enumerate(modalities)},
        "num_samples": int(all_targets.numel()),
    }


def evaluate_run(
    run_dir: Path,
    corruption: str | None = None,
    severities: Sequence[float] = (0.0,),
    target: str = "all",
    seed: int = 0,
    batch_size: int = 256,
    weights: str = "learned",
) -> dict[str, Any]:
    """Sweep the selected model of a finished run over ``severities`` on its test split.

    Returns the run's identity (dataset, method, fusion, training seed), the protocol
    (corruption, target, evaluation seed) and ``results``: one entry per severity, in order.
    """
    from robustfusion.training.run import load_run

    model, splits, config = load_run(Path(run_dir))
    results = []
    for severity in severities:
        metrics = evaluate_model(
            model,
            splits.test,
            splits.info,
            corruption=corruption,
            severity=float(severity),
            target=target,
            seed=seed,
            batch_size=batch_size,
            weights=weights,
        )
        results.append({"severity": float(severity), **metrics})
    return {
        "run": str(Path(run_dir).resolve()),
        "dataset": splits.info.name,
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
