"""The method interface every fusion method implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from robustfusion.tasks.base import task_of
from robustfusion.types import Batch, FusionOutput

#: The modality weights a method may fuse with. ``learned``: its own rule (for a uniform twin,
#: trained with ``weights="uniform"``, that is uniform); ``uniform``: equal weights over the
#: present modalities; ``oracle``: the corrupted modalities of each sample at the lowest weight
#: the method allows (0) and the others sharing the rest (rows where no present modality, or
#: every one, is corrupted get uniform weights). See ``docs/fidelity.md``.
WEIGHT_MODES = ("learned", "uniform", "oracle")
#: What a method's ``weights`` option accepts: its own rule, or fixed uniform weights (the
#: "uniform twin": the same training with the weights taken out).
TRAINED_WEIGHT_MODES = ("learned", "uniform")


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
    #: ``ModalityInfo.intensity_scale`` per modality (stored-value change per raw unit: one 0-255
    #: intensity unit for images, one natural-log-magnitude unit for spectrograms; ``None`` when
    #: unknown): lets UDML inject noise in the authors' units.
    input_scales: Mapping[str, float | None] = field(default_factory=dict)
    #: The run's seed (``--seed``): methods that draw per-sample randomness (noise levels, dropped
    #: modalities) key it on this unless their own ``seed`` option is given.
    seed: int = 0
    #: The registered task (:data:`robustfusion.registry.TASKS`) whose head, loss and targets the
    #: method uses, and the per-sample target shape (``()`` for classification, ``(H, W)`` for
    #: segmentation).
    task: str = "classification"
    target_shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class MethodFacts:
    """What the rest of the library needs to know about a method, given with its registration
    (``@METHODS.register(name, description, facts=MethodFacts(...))``).

    ``tasks``: the registered tasks it is defined for; ``feature_kinds``: the encoder features it
    can fuse (``vector`` ``[B, D]``, ``map`` ``[B, C, h, w]``). A method registered without facts
    supports classification on vectors only.
    """

    tasks: tuple[str, ...] = ("classification",)
    feature_kinds: tuple[str, ...] = ("vector",)


def method_facts(name: str) -> MethodFacts:
    """The facts of a registered method (a method registered without them: the defaults)."""
    from robustfusion.registry import METHODS

    facts = METHODS.facts(name)
    return facts if isinstance(facts, MethodFacts) else MethodFacts()


def check_task_support(name: str, task: str) -> None:
    """Refuse, in one line, a (possibly composed ``outer+inner``) method on a task or a feature
    kind one of its parts is not defined for."""
    from robustfusion.errors import ConfigError
    from robustfusion.registry import METHODS, TASKS

    kind = TASKS.get(task).feature_kind
    for part in name.split("+"):
        facts = method_facts(part)
        if task not in facts.tasks or kind not in facts.feature_kinds:
            able = [
                entry.name
                for entry in METHODS
                if task in method_facts(entry.name).tasks
                and kind in method_facts(entry.name).feature_kinds
            ]
            raise ConfigError(
                f"method {part!r} is not defined for {task} (on {kind} features): choose one of "
                f"{', '.join(able)}"
            )


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
    that they are saved in checkpoints. A method around another one (``outer+inner``) derives from
    :class:`~robustfusion.methods.wrapper.WrapperMethod`, which forwards every hook to ``inner``.
    """

    #: Methods that need spatial feature maps ``[B, C, h, w]`` instead of vectors set this.
    wants_spatial_features: ClassVar[bool] = False
    #: Methods that fuse with per-sample modality weights set this, take a ``weights`` option
    #: (``"learned"`` or ``"uniform"``: the uniform twin) and pass their weights through
    #: :meth:`swap_weights`, so that evaluation can swap them (``evaluate --weights``).
    has_dynamic_weights: ClassVar[bool] = False

    def __init__(self, spec: MethodSpec) -> None:
        super().__init__()
        self.spec = spec
        self.modalities: tuple[str, ...] = tuple(spec.modalities)
        #: The task's head builder, loss and metrics (:class:`robustfusion.tasks.base.Task`).
        self.task = task_of(spec.task)
        #: ``"learned"`` or ``"uniform"`` (the uniform twin); set from the ``weights`` option.
        self.trained_weights = "learned"
        self._weight_mode = "learned"
        self._corrupted: Tensor | None = None

    # ----------------------------------------------------------------- weight swaps
    def set_weight_mode(self, mode: str, corrupted: Tensor | None = None) -> None:
        """Choose the weights the next forward passes fuse with (see :data:`WEIGHT_MODES`).

        ``corrupted`` (``BoolTensor[B, M]``, modality order of :attr:`modalities`) is required
        for ``oracle`` and must match the batch of the next forward. A wrapper method
        (:class:`~robustfusion.methods.wrapper.WrapperMethod`) passes the mode on to its ``inner``
        method. Evaluation resets the mode to ``learned`` afterwards.
        """
        if mode not in WEIGHT_MODES:
            from robustfusion.errors import ConfigError

            raise ConfigError(f"unknown weights {mode!r}: choose one of {', '.join(WEIGHT_MODES)}")
        self._weight_mode = mode
        self._corrupted = corrupted if mode == "oracle" else None

    def effective_weight_mode(self) -> str:
        """``learned``, ``uniform`` or ``oracle``: the evaluation swap if one is set, else the
        weights the method was trained with (``uniform`` for a uniform twin)."""
        if self._weight_mode == "learned":
            return self.trained_weights
        return self._weight_mode

    def swap_weights(self, learned: Tensor, present: Mapping[str, Tensor]) -> Tensor:
        """The normalised weights ``[B, M]`` to fuse with, given the method's ``learned`` ones.

        ``learned`` must sum to 1 over the present modalities (absent ones 0). Returns it
        unchanged in ``learned`` mode, else :func:`replacement_weights`. Methods with dynamic
        weights call this and map the result to their native scale.
        """
        mode = self.effective_weight_mode()
        if mode == "learned":
            return learned
        mask = torch.stack([present[m] for m in self.modalities], dim=1).to(learned.device)
        corrupted = None if self._corrupted is None else self._corrupted.to(learned.device)
        return replacement_weights(mode, mask, corrupted).to(learned.dtype)

    @classmethod
    def training_defaults(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Training settings (``TrainConfig`` fields such as ``optimizer``, ``lr``,
        ``weight_decay``, ``momentum``, ``gradient_clip_val``) this method's recipe uses, given
        its options (e.g. a ``preset``). They replace the global defaults for every setting the
        user did not give; default: none."""
        return {}

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        raise NotImplementedError  # pragma: no cover - interface

    def encode(
        self, encoders: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """Features of every modality: ``{m: encoders[m](inputs[m])}``. A method that runs part of
        the encoders itself (DMS's MC dropout over them) overrides this; a wrapper asks its inner
        method. :class:`~robustfusion.model.MultimodalModel` encodes through this hook."""
        return {m: encoders[m](inputs[m]) for m in self.modalities}

    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        """Named loss terms whose sum is minimised; default: the task's loss of the fused logits
        (cross-entropy; for segmentation without the ignored pixels)."""
        return {"ce": self.task.loss(output.logits, batch.target)}

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


def output_head(spec: MethodSpec, in_dim: int) -> nn.Module:
    """The task's output head on ``in_dim`` fused features: a linear classifier for
    classification, :class:`~robustfusion.modules.segmentation_head.SegmentationHead` for
    segmentation (:meth:`robustfusion.tasks.base.Task.build_head`)."""
    return task_of(spec.task).build_head(in_dim, spec.num_classes, spec.target_shape)


def replacement_weights(mode: str, present: Tensor, corrupted: Tensor | None = None) -> Tensor:
    """Normalised ``[B, M]`` weights for ``mode`` ``uniform`` or ``oracle`` (see :data:`WEIGHT_MODES`).

    Args:
        present: ``BoolTensor[B, M]``.
        corrupted: ``BoolTensor[B, M]`` (``oracle`` only): which modalities a corruption changed.
    """
    mask = present.to(torch.get_default_dtype())
    uniform = mask / mask.sum(dim=1, keepdim=True).clamp_min(1.0)
    if mode == "uniform":
        return uniform
    if mode != "oracle":
        raise ValueError(f"no replacement weights for mode {mode!r}")
    if corrupted is None:
        raise ValueError("oracle weights need the corrupted mask of the batch")
    if corrupted.shape != present.shape:
        raise ValueError(
            f"oracle: corrupted mask {tuple(corrupted.shape)} does not match {tuple(present.shape)}"
        )
    clean = (present & ~corrupted.bool()).to(mask.dtype)
    bad = (present & corrupted.bool()).any(dim=1, keepdim=True)
    informative = bad & (clean.sum(dim=1, keepdim=True) > 0)
    oracle = clean / clean.sum(dim=1, keepdim=True).clamp_min(1.0)
    return torch.where(informative, oracle, uniform)


def trained_weights_option(method: str, value: object) -> str:
    """Check a method's ``weights`` option (``learned`` or ``uniform``)."""
    if value not in TRAINED_WEIGHT_MODES:
        from robustfusion.errors import ConfigError

        raise ConfigError(
            f"{method}: option weights must be learned or uniform (the uniform twin), got {value!r}"
        )
    return str(value)


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
    check_task_support(name, spec.task)
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
