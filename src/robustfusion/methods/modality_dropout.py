"""Modality dropout: whole modalities dropped at random during training (METHODS.md §4).

In :meth:`prepare_batch` (training only) each present modality of each sample is marked absent
with probability ``p`` through the presence mask, and its input zeroed (the batch contract for
absent inputs). The draw comes from the :mod:`robustfusion.rng` stream ``(seed,
"modality-dropout", "train", epoch, modality)`` at the sample index, on the batch's device, so it
is reproducible, independent of the batching and changes every epoch. A sample never loses all
its modalities: if every present one is drawn, the one with the largest draw is kept. The model is
static fusion; given ``inner=`` (``build_method("modality_dropout+tmc")``) it wraps that method
instead, and every other hook (losses, gradient modulation, schedules, model selection, weight
swaps) is the inner method's (:class:`~robustfusion.methods.wrapper.WrapperMethod`).

Segmentation: nothing changes on maps. Only the inputs and the presence mask (one flag per
sample and modality, ``[B]``) are touched; the targets (``[B, H, W]`` label maps) are left as
they are, so every pixel of a sample keeps its label when a modality is dropped, and the inner
method (``static`` by default, whose fusion and head act on maps) sees the dropped modality as
absent. The draw is per sample, not per pixel: a modality is missing from a whole image, as in the
missing-modality protocol (METHODS.md section 5).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from robustfusion.accepts import Accepts, integer, number
from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, MethodFacts, MethodSpec
from robustfusion.methods.wrapper import WrapperMethod
from robustfusion.registry import METHODS
from robustfusion.rng import stream
from robustfusion.types import Batch


def drop_modalities(
    batch: Batch, p: float, seed: int, epoch: int, modalities: tuple[str, ...]
) -> Batch:
    """Mark each present modality absent with probability ``p``, keeping at least one per sample."""
    present = torch.stack([batch.present[m] for m in modalities], dim=1)
    index = batch.index.to(present.device)
    draws = torch.stack(
        [
            stream(seed, "modality-dropout", "train", int(epoch), i).uniform(
                index, (), torch.float64
            )
            for i in range(len(modalities))
        ],
        dim=1,
    )
    keep = present & (draws >= p)
    lost_all = present.any(dim=1) & ~keep.any(dim=1)
    if bool(lost_all.any()):
        best = torch.where(present, draws, torch.full_like(draws, -1.0)).argmax(dim=1)
        rescue = torch.zeros_like(keep)
        rescue[torch.arange(keep.shape[0], device=keep.device), best] = True
        keep = keep | (rescue & lost_all.unsqueeze(1))
    inputs = dict(batch.inputs)
    new_present = dict(batch.present)
    for i, m in enumerate(modalities):
        column = keep[:, i]
        shape = (-1,) + (1,) * (inputs[m].dim() - 1)
        inputs[m] = inputs[m] * column.view(shape).to(inputs[m].dtype)
        new_present[m] = column
    return batch.replace(inputs=inputs, present=new_present)


@METHODS.register(
    "modality_dropout",
    "static fusion trained with whole modalities dropped at random (option p=0.3)",
    facts=MethodFacts(tasks=("classification", "segmentation"), feature_kinds=("vector", "map")),
)
class ModalityDropout(WrapperMethod):
    """Options: ``p`` (0.3), ``seed`` (default: the run's ``--seed``). Composable as the outer
    method: ``modality_dropout+X``; every other hook is ``X``'s (:class:`WrapperMethod`)."""

    #: What each numeric option accepts (checked before anything is built or written).
    option_limits: ClassVar[dict[str, Accepts]] = {
        "p": number(0.0, 1.0, open_maximum=True),
        "seed": integer(0, 2**32 - 1),
    }

    def __init__(
        self, spec: MethodSpec, p: float = 0.3, seed: int | None = None, inner: Method | None = None
    ) -> None:
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"modality_dropout: p must be in [0, 1), got {p}")
        super().__init__(spec, inner)
        self.p = float(p)
        self.seed = int(spec.seed if seed is None else seed)
        self.epoch = 0

    def prepare_batch(self, batch: Batch, training: bool) -> Batch:
        """Training: drop modalities, then the inner method prepares the batch."""
        if training and self.p > 0:
            batch = drop_modalities(batch, self.p, self.seed, self.epoch, self.modalities)
        return super().prepare_batch(batch, training)

    def on_epoch_start(self, epoch: int, max_epochs: int) -> None:
        self.epoch = int(epoch)
        super().on_epoch_start(epoch, max_epochs)
