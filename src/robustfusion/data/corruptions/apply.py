"""``corrupt``: apply a registered corruption to a batch, seeded per sample.

Determinism: each row's draws come from a seed drawn from the :mod:`robustfusion.rng` stream
``(seed, "corrupt", corruption, severity, modality)`` at the sample's index (``Batch.index``),
so the same ``(seed, severity)`` corrupts the same sample the same way in any batch, order or
batch size, and on any device (everything runs on the inputs' device, without a per-row loop).
With ``target="each"`` every (sample, modality) is selected with p = 0.5 from the stream
``(seed, "corrupt-each", modality)`` only (:func:`each_selected`): the same samples are corrupted
at every severity and by every corruption. Absent modalities are never corrupted; severity 0
returns the batch unchanged (the same object). The returned batch's ``corrupted`` marks, per
modality, the samples whose modality this call (or an earlier one) changed.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustfusion.data.base import DatasetInfo
from robustfusion.errors import ConfigError, DataError
from robustfusion.registry import CORRUPTIONS
from robustfusion.rng import stream
from robustfusion.types import Batch


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
    if CORRUPTIONS.facts(corruption).bounded and severity > 1:
        raise ConfigError(f"{corruption} severity {severity} is a fraction: use a value in [0, 1]")
    targets = _targets(target, info, batch)
    if severity == 0:
        return batch
    inputs = dict(batch.inputs)
    present = dict(batch.present)
    corrupted = dict(batch.corrupted)
    for name in targets:
        x = inputs[name]
        index = batch.index.to(x.device).long()
        selected = present[name].to(x.device).bool()
        if target == "each":
            selected = selected & each_selected(index, seed, name)
        before = corrupted.get(name, torch.zeros_like(batch.present[name], dtype=torch.bool))
        corrupted[name] = before | selected.to(before.device)
        rows = selected.nonzero().flatten()
        if rows.numel() == 0:
            continue
        seeds = stream(seed, "corrupt", corruption, severity, name).seeds(index[rows])
        values, keep = fn(x[rows], info.modality(name), severity, seeds)
        x = x.clone()
        x[rows] = values.to(x.dtype)
        inputs[name] = x
        if not bool(keep.all()):
            p = present[name].clone()
            p[rows.to(p.device)] = keep.to(p.device)
            present[name] = p
    _keep_one(batch, inputs, present, corrupted, seed, corruption, severity)
    return batch.replace(inputs=inputs, present=present, corrupted=corrupted)


def each_selected(index: Tensor, seed: int, modality: str) -> Tensor:
    """``BoolTensor[B]``: the samples whose ``modality`` ``target="each"`` corrupts (p = 0.5),
    a function of ``(seed, modality, index)`` only; on ``index``'s device."""
    return stream(seed, "corrupt-each", modality).bernoulli(index, 0.5)


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
    seed: int,
    corruption: str,
    severity: float,
) -> None:
    """Restore one modality (seeded choice among those it had) of samples that lost them all."""
    names = batch.modalities
    device = batch.present[names[0]].device
    before = torch.stack([batch.present[m].to(device).bool() for m in names], 1)
    after = torch.stack([present[m].to(device).bool() for m in names], 1)
    lost = ~after.any(1) & before.any(1)
    if not bool(lost.any()):
        return
    index = batch.index.to(device).long()
    had = before.sum(1).clamp_min(1)
    rank = stream(seed, "corrupt-keep-one", corruption, severity).integers(index, had)
    rank = rank.unsqueeze(1)
    # the rank-th modality each sample had, for the samples that lost them all
    restore = (before.long().cumsum(1) - 1 == rank) & before & lost.unsqueeze(1)
    for i, name in enumerate(names):
        rows = restore[:, i]
        if not bool(rows.any()):
            continue
        x = inputs[name]
        shape = (-1,) + (1,) * (x.dim() - 1)
        inputs[name] = torch.where(rows.to(x.device).view(shape), batch.inputs[name], x)
        present[name] = present[name] | rows.to(present[name].device)
        if name in corrupted:  # restored as it was before this call
            c = corrupted[name]
            earlier = batch.corrupted.get(name, torch.zeros_like(c))
            corrupted[name] = torch.where(rows.to(c.device), earlier.to(c.device), c)
