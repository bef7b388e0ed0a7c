"""MLP encoder for vector modalities."""

from __future__ import annotations

from torch import Tensor, nn

from robustfusion.encoders.base import Stage
from robustfusion.errors import ConfigError
from robustfusion.registry import ENCODERS


@ENCODERS.register("mlp", "two-layer perceptron for vector features (D,)")
class MLPEncoder(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, ...],
        out_dim: int = 128,
        spatial: bool = False,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if len(input_shape) != 1:
            raise ConfigError(f"the mlp encoder needs vector inputs (D,), got {tuple(input_shape)}")
        self.out_dim = out_dim
        self.spatial = False
        width = max(out_dim, 128)
        self.net = nn.Sequential(
            nn.Linear(input_shape[0], width),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(width, out_dim),
            nn.ReLU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def split(self) -> list[Stage]:
        """Trunk ``Linear-ReLU-Dropout``, top ``Linear-ReLU`` (see :func:`encoder_stages`)."""
        return [self.net[:3], self.net[3:]]
