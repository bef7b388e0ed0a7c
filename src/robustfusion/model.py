"""A multimodal model: one encoder per modality and a fusion method."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from robustfusion.errors import DataError
from robustfusion.methods.base import Method
from robustfusion.types import Batch, FusionOutput


class MultimodalModel(nn.Module):
    """``LateFusion``-style composition: ``encoders[m](inputs[m])`` for every modality, then ``method``.

    Inputs of absent modalities are still encoded (batched), but the method masks them out.
    """

    def __init__(self, encoders: Mapping[str, nn.Module], method: Method) -> None:
        super().__init__()
        missing = set(method.modalities) - set(encoders)
        if missing:
            raise DataError(
                f"no encoder for modalities {sorted(missing)}: give one encoder per modality"
            )
        self.encoders = nn.ModuleDict(dict(encoders))
        self.method = method

    def encode(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``method.encode(encoders, inputs)``: by default each modality through its encoder."""
        return self.method.encode(self.encoders, inputs)

    def forward(self, batch: Batch) -> FusionOutput:
        for m in self.method.modalities:
            if m not in batch.inputs:
                raise DataError(
                    f"the batch has no modality {m!r}; it has {', '.join(batch.inputs)}"
                )
        return self.method(self.encode(batch.inputs), batch.present)
