"""No encoder: a vector modality's input is its feature (TMC's protocol, linear per-view heads)."""

from __future__ import annotations

from torch import Tensor, nn

from robustfusion.encoders.base import Stage
from robustfusion.errors import ConfigError
from robustfusion.registry import ENCODERS


@ENCODERS.register("identity", "no encoder: the input vector (D,) is the feature (out_dim = D)")
class IdentityEncoder(nn.Module):
    """``x -> x`` for vectors ``(D,)``; ``out_dim`` is ``D`` whatever ``--feature-dim`` says, so
    that the method's heads act on the raw features (TMC's ``Linear(D, classes)`` per view)."""

    def __init__(
        self, input_shape: tuple[int, ...], out_dim: int = 128, spatial: bool = False
    ) -> None:
        super().__init__()
        if len(input_shape) != 1:
            raise ConfigError(
                f"the identity encoder needs vector inputs (D,), got {tuple(input_shape)}: "
                "use mlp, cnn or resnet18 for maps"
            )
        self.out_dim = int(input_shape[0])
        self.spatial = False

    def forward(self, x: Tensor) -> Tensor:
        return x

    def split(self) -> list[Stage]:
        """One stage, the identity (nothing to drop out but the input itself)."""
        return [nn.Identity()]
