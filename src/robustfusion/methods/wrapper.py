"""The base of composable methods: a method around an ``inner`` method (``outer+inner``).

:class:`WrapperMethod` forwards every :class:`~robustfusion.methods.base.Method` hook to
``inner``; a wrapper overrides only the hooks it changes and calls ``super()`` in them to keep
the inner method's behaviour (e.g. modality dropout drops modalities in ``prepare_batch``, then
lets the inner method prepare the batch). A hook added to :class:`Method` must be forwarded here
too: ``tests/methods/test_contract.py`` checks that every hook is.

The recipe (:meth:`Method.training_defaults`) is a class method and is not forwarded here: the
training configuration merges the recipes of every part of ``outer+inner`` itself (the outer
one's settings first, :meth:`TrainConfig.recipe <robustfusion.training.config.TrainConfig.recipe>`).

Tasks: a wrapper inherits nothing from its inner method's registration. It declares the tasks and
feature kinds it supports in its own ``facts=`` (``MethodFacts``), and only those its own hooks
really handle (e.g. ``mwam`` and ``modality_dropout`` on maps and ``[B, H, W]`` targets);
``outer+inner`` is refused unless every part supports the task
(:func:`~robustfusion.methods.base.check_task_support`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from torch import Tensor, nn

from robustfusion.methods.base import Method, MethodSpec
from robustfusion.types import Batch, FusionOutput


class WrapperMethod(Method):
    """A method around ``inner`` (``None``: static fusion built from ``spec``); every hook goes
    to ``inner`` unless a subclass overrides it.

    The wrapper takes on the inner method's ``wants_spatial_features`` and
    ``has_dynamic_weights`` (per instance), so that encoders and weight swaps fit the inner
    method; weight swaps (:meth:`set_weight_mode`) reach it.
    """

    composable: ClassVar[bool] = True

    def __init__(self, spec: MethodSpec, inner: Method | None = None) -> None:
        super().__init__(spec)
        if inner is None:
            from robustfusion.methods.static import StaticFusion

            inner = StaticFusion(spec)
        self.inner: Method = inner
        self.wants_spatial_features = inner.wants_spatial_features  # type: ignore[misc]
        self.has_dynamic_weights = inner.has_dynamic_weights  # type: ignore[misc]

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        return self.inner(features, present)

    def encode(
        self, encoders: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        return self.inner.encode(encoders, inputs)

    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        return self.inner.losses(output, batch)

    def prepare_batch(self, batch: Batch, training: bool) -> Batch:
        return self.inner.prepare_batch(batch, training)

    def after_backward(self, encoders: nn.ModuleDict) -> None:
        self.inner.after_backward(encoders)

    def on_epoch_start(self, epoch: int, max_epochs: int) -> None:
        self.inner.on_epoch_start(epoch, max_epochs)

    def lr_scale(self, epoch: int, max_epochs: int) -> float:
        return self.inner.lr_scale(epoch, max_epochs)

    def logged_values(self) -> dict[str, float]:
        return self.inner.logged_values()

    def selectable_epoch(self, epoch: int, max_epochs: int) -> bool:
        return self.inner.selectable_epoch(epoch, max_epochs)

    def set_weight_mode(self, mode: str, corrupted: Tensor | None = None) -> None:
        super().set_weight_mode(mode, corrupted)
        self.inner.set_weight_mode(mode, corrupted)

    def effective_weight_mode(self) -> str:
        return self.inner.effective_weight_mode()

    def swap_weights(self, learned: Tensor, present: Mapping[str, Tensor]) -> Tensor:
        return self.inner.swap_weights(learned, present)
