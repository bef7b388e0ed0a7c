"""The method interface every fusion method implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfusion.types import Batch, FusionOutput


@dataclass(frozen=True)
class MethodSpec:
    """What a method is built from: the modalities, their feature sizes and the task.

    ``input_shapes``, ``input_kinds`` and ``input_scales`` describe the raw inputs (for methods
    such as MWAM and UDML that look at them); ``fusion`` names the fusion head, ``hidden_dim`` its width.
    """

    modalities: tuple[str, ...]
    feature_dims: Mapping[str, int]
    num_classes: int
    fusion: str = "concat"
    hidden_dim: int = 128
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    input_kinds: Mapping[str, str] = field(default_factory=dict)
    #: ``ModalityInfo.intensity_scale`` per modality (stored-value change per 0-255 intensity
    #: unit, images only): lets UDML inject noise given in 0-255 units.
    input_scales: Mapping[str, float | None] = field(default_factory=dict)
    #: The run's seed (``--seed``): methods that draw per-sample randomness (noise levels, dropped
    #: modalities) key it on this unless their own ``seed`` option is given.
    seed: int = 0


class Method(nn.Module):
    """A fusion method: ``forward(features, present) -> FusionOutput`` plus training hooks.

    Subclasses implement :meth:`forward` and usually :meth:`losses`. The optional hooks are called
    by our trainer and can be called from any plain PyTorch loop::

        batch = method.prepare_batch(batch, training=True)   # noise injection, modality dropout
        features = {m: encoders[m](batch.inputs[m]) for m in batch.modalities}
        output = method(features, batch.present)
        loss = sum(method.losses(output, batch).values())
        loss.backward()
        method.after_backward(encoders)                       # gradient modulation
        optimizer.step()

    and ``method.on_epoch_start(epoch, max_epochs)`` at the start of every epoch.
    Statistics that drive weights (FRM bank, dependency, history) live in registered buffers so
    that they are saved in checkpoints.
    """

    #: Methods that need spatial feature maps ``[B, C, h, w]`` instead of vectors set this.
    wants_spatial_features: ClassVar[bool] = False

    def __init__(self, spec: MethodSpec) -> None:
        super().__init__()
        self.spec = spec
        self.modalities: tuple[str, ...] = tuple(spec.modalities)

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        raise NotImplementedError  # pragma: no cover - interface

    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        """Named loss terms whose sum is minimised; default: cross-entropy of the fused logits."""
        return {"ce": F.cross_entropy(output.logits, batch.target)}

    def prepare_batch(self, batch: Batch, training: bool) -> Batch:
        """Transform a batch before encoding (noise injection, modality dropout); default: identity."""
        return batch

    def after_backward(self, encoders: nn.ModuleDict) -> None:
        """Called after ``loss.backward()`` and before the optimiser step (gradient modulation)."""

    def on_epoch_start(self, epoch: int, max_epochs: int) -> None:
        """Called at the start of every training epoch (progressive schedules)."""

    def lr_scale(self, epoch: int, max_epochs: int) -> float:
        """Multiplier of the base learning rate for ``epoch`` (default 1: no schedule)."""
        return 1.0

    def logged_values(self) -> dict[str, float]:
        """Scalars to log after each training step (FRM, K, dependency ...)."""
        return {}

    def selectable_epoch(self, epoch: int, max_epochs: int) -> bool:
        """Whether the model after ``epoch`` may be selected on validation (default: every epoch;
        a progressive schedule such as UDML's excludes its warm-up phases)."""
        return True


def uniform_weights(present: Mapping[str, Tensor], modalities: tuple[str, ...]) -> Tensor:
    """``[B, M]`` weights spread evenly over the present modalities (sum 1 per sample)."""
    mask = torch.stack([present[m] for m in modalities], dim=1).to(torch.get_default_dtype())
    return mask / mask.sum(dim=1, keepdim=True).clamp_min(1.0)


def normalise_weights(
    weights: Tensor, present: Mapping[str, Tensor], modalities: tuple[str, ...]
) -> Tensor:
    """Zero the weights of absent modalities and rescale each row to sum to 1."""
    mask = torch.stack([present[m] for m in modalities], dim=1).to(weights.dtype)
    masked = weights * mask
    return masked / masked.sum(dim=1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)


def build_method(
    name: str, spec: MethodSpec, options: Mapping[str, Mapping[str, Any]] | None = None
) -> Method:
    """Build a registered method; ``"outer+inner"`` composes a wrapper (e.g. ``mwam+modality_dropout``).

    ``options`` maps a method name to its keyword options, e.g. ``{"udml": {"gamma": 4.0}}``.
    A wrapper method receives the built inner method as its ``inner`` argument.
    """
    from robustfusion.errors import ConfigError
    from robustfusion.registry import METHODS, check_options

    options = dict(options or {})
    outer, _, inner = name.partition("+")
    factory = METHODS.get(outer)
    kwargs = dict(options.get(outer, {}))
    if inner:
        if not getattr(factory, "composable", False):
            raise ConfigError(
                f"method {outer!r} cannot wrap another method ({name!r}); only wrappers such as "
                f"'mwam' can be composed as 'mwam+{inner}'"
            )
        kwargs["inner"] = build_method(inner, spec, options)
    check_options(factory, kwargs, f"method {outer!r}", spec)
    return factory(spec, **kwargs)
