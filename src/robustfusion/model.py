"""A multimodal model: one encoder per modality, a fusion method and, optionally, skip scores."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from torch import Tensor, nn

from robustfusion.errors import DataError
from robustfusion.methods.base import Method
from robustfusion.modules.skip_decoder import SkipScores
from robustfusion.types import Batch, FusionOutput


class MultimodalModel(nn.Module):
    """``LateFusion``-style composition: ``encoders[m](inputs[m])`` for every modality, then ``method``.

    Inputs of absent modalities are still encoded (batched), but the method masks them out.
    With ``decoder`` (segmentation, ``--decoder skips``) the encoders also give their shallower
    maps (``forward_pyramid``), and the decoder adds their class scores, fused with the method's
    weights, to the method's logits (:mod:`robustfusion.modules.skip_decoder`). The method itself
    sees the deepest maps only, as without a decoder.
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        method: Method,
        decoder: SkipScores | None = None,
    ) -> None:
        super().__init__()
        missing = set(method.modalities) - set(encoders)
        if missing:
            raise DataError(
                f"no encoder for modalities {sorted(missing)}: give one encoder per modality"
            )
        self.encoders = nn.ModuleDict(dict(encoders))
        self.method = method
        self.decoder = decoder

    def encode(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``method.encode(encoders, inputs)``: by default each modality through its encoder."""
        return self.method.encode(self.encoders, inputs)

    def forward(self, batch: Batch) -> FusionOutput:
        for m in self.method.modalities:
            if m not in batch.inputs:
                raise DataError(
                    f"the batch has no modality {m!r}; it has {', '.join(batch.inputs)}"
                )
        if self.decoder is None:
            return self.method(self.encode(batch.inputs), batch.present)
        skips: dict[str, list[Tensor]] = {}

        def tapped(m: str) -> Callable[[Tensor], Tensor]:
            encoder = self.encoders[m]

            def run(x: Tensor) -> Tensor:
                maps = encoder.forward_pyramid(x)
                skips[m] = maps[:-1]
                return maps[-1]

            return run

        taps = {m: tapped(m) for m in self.encoders}
        output = self.method(self.method.encode(taps, batch.inputs), batch.present)  # type: ignore[arg-type]
        extra = self.decoder(skips, output.weights.detach(), output.logits.shape[-2:])
        return dataclasses.replace(output, logits=output.logits + extra)
