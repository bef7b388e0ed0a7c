"""``corrupt``: apply a registered corruption to a batch, seeded per sample.

Determinism: each row's draws come from a seed hashed from ``(seed, corruption, severity,
modality, sample index)`` (``Batch.index``), so the same ``(seed, severity)`` corrupts the same
sample the same way in any batch, order or batch size. With ``target="each"`` every (sample,
modality) is selected with p = 0.5 from a seed of ``(seed, modality, sample index)`` only: the
same samples are corrupted at every severity and by every corruption. Absent modalities are
never corrupted; severity 0 returns the batch unchanged (the same object). The returned batch's
``corrupted`` marks, per modality, the samples whose modality this call (or an earlier one) changed.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustfusion.data.base import DatasetInfo
from robustfusion.data.corruptions.base import sample_seeds, uniform_from_seeds
from robustfusion.errors import ConfigError, DataError
from robustfusion.registry import CORRUPTIONS
from robustfusion.types import Batch

#: Corruptions whose severity is a probability or fraction, so at most 1.
BOUNDED = ("missing", "salt_pepper")


def corrupt(
    batch: Batch,
    info: DatasetInfo,
    corruption: str,
    severity: float,
    target: str = "all",
    seed: int = 0,
) -> Batch:
    """Corrupt ``batch`` (see the module docstring).

    Args:
        corruption: a name of :data:`robustfusion.registry.CORRUPTIONS`.
        severity: Gaussian std (0-255 units on images), salt-and-pepper fraction, blur sigma or
            missing probability.
        target: ``all``, ``each`` (each modality independently with p = 0.5) or a modality name.
    """
    fn = CORRUPTIONS.get(corruption)
    severity = float(severity)
    if not math.isfinite(severity) or severity < 0:
        raise ConfigError(f"severity {severity} is invalid: use a finite number >= 0")
    if corruption in BOUNDED and severity > 1:
        raise ConfigError(f"{corruption} severity {severity} is a fraction: use a value in [0, 1]")
    targets = _targets(target, info, batch)
    if severity == 0:
        return batch
    index = batch.index.detach().cpu().long()
    inputs = dict(batch.inputs)
    present = dict(batch.present)
    corrupted = dict(batch.corrupted)
    for name in targets:
        selected = present[name].detach().cpu().bool().clone()
        if target == "each":
            selected &= uniform_from_seeds(sample_seeds(index, seed, "each", name)) < 0.5
        before = corrupted.get(name, torch.zeros_like(batch.present[name], dtype=torch.bool))
        corrupted[name] = before | selected.to(before.device)
        rows = selected.nonzero().flatten()
        if rows.numel() == 0:
            continue
        seeds = sample_seeds(index[rows], seed, corruption, severity, name)
        device_rows = rows.to(inputs[name].device)
        values, keep = fn(inputs[name][device_rows], info.modality(name), severity, seeds)
        x = inputs[name].clone()
        x[device_rows] = values.to(x.dtype)
        inputs[name] = x
        if not bool(keep.all()):
            p = present[name].clone()
            p[device_rows] = keep.to(p.device)
            present[name] = p
    _keep_one(batch, inputs, present, corrupted, index, seed, corruption, severity)
    return batch.replace(inputs=inputs, present=present, corrupted=corrupted)


def _targets(target: str, info: DatasetInfo, batch: Batch) -> tuple[str, ...]:
    for name in batch.modalities:
        expected = info.modality(name).shape
        got = tuple(batch.inputs[name].shape[1:])
        if got != expected:
            raise DataError(
                f"modality {name!r} has per-sample shape {got} but the dataset says {expected}"
            )
    if target in ("all", "each"):
        return batch.modalities
    if target not in batch.modalities:
        raise ConfigError(
            f"unknown corruption target {target!r}: use all, each or one of {', '.join(batch.modalities)}"
        )
    return (target,)


def _keep_one(
    batch: Batch,
    inputs: dict[str, Tensor],
    present: dict[str, Tensor],
    corrupted: dict[str, Tensor],
    index: Tensor,
    seed: int,
    corruption: str,
    severity: float,
) -> None:
    """Restore one modality (seeded choice among those it had) of samples that lost them all."""
    names = batch.modalities
    before = torch.stack([batch.present[m].detach().cpu().bool() for m in names], 1)
    after = torch.stack([present[m].detach().cpu().bool() for m in names], 1)
    lost = (~after.any(1) & before.any(1)).nonzero().flatten()
    if lost.numel() == 0:
        return
    draws = uniform_from_seeds(sample_seeds(index[lost], seed, corruption, severity, "keep-one"))
    restored: dict[str, list[int]] = {}
    for row, u in zip(lost.tolist(), draws.tolist(), strict=True):
        had = before[row].nonzero().flatten().tolist()
        choice = names[had[min(int(u * len(had)), len(had) - 1)]]
        restored.setdefault(choice, []).append(row)
    for name, rows in restored.items():
        idx = torch.tensor(rows, dtype=torch.long, device=inputs[name].device)
        x = inputs[name].clone()
        x[idx] = batch.inputs[name][idx]
        inputs[name] = x
        p = present[name].clone()
        p[idx.to(p.device)] = True
        present[name] = p
        if name in corrupted:  # restored as it was before this call
            c = corrupted[name].clone()
            earlier = batch.corrupted.get(name, torch.zeros_like(c))
            c[idx.to(c.device)] = earlier[idx.to(c.device)]
            corrupted[name] = c
