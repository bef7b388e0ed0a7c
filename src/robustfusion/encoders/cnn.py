"""Small CNN encoder for 2-D maps (images, spectrograms, channels x time).

Its convolutions run in the channels-last memory layout (weights and activations), oneDNN's
native layout on CPU. On avdigits' spectrograms the default layout costs 1.5-1.8x per training
step and 1.3-2.2x per inference pass (two runs, 1 thread, ``benchmarks/bench_eval.py``). The values
are the same up to float rounding; parameters and checkpoints are unchanged (a state dict
loads either way). Spatial maps are returned contiguous, as before.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustfusion.encoders.base import Stage, channels_of
from robustfusion.registry import ENCODERS


def _block(cin: int, cout: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
    return nn.Sequential(*layers)


@ENCODERS.register("cnn", "three conv-BN-ReLU blocks with pooling, for (H, W) or (C, H, W) maps")
class SmallCNNEncoder(nn.Module):
    def __init__(
        self,
        input_shape: tuple[int, ...],
        out_dim: int = 128,
        spatial: bool = False,
        width: int = 32,
    ) -> None:
        super().__init__()
        self.in_channels = channels_of(input_shape)
        self.out_dim = out_dim
        self.spatial = spatial
        pools = (True, True, min(input_shape[-2:]) >= 8)
        self.features = nn.Sequential(
            _block(self.in_channels, width, pool=pools[0]),
            _block(width, width * 2, pool=pools[1]),
            _block(width * 2, out_dim, pool=pools[2]),
        )
        #: Channels and stride of each block's output (:meth:`forward_pyramid`).
        self.pyramid_channels = (width, width * 2, out_dim)
        self.pyramid_strides = tuple(2 ** sum(pools[: i + 1]) for i in range(3))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.features.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        maps = self.features(x.contiguous(memory_format=torch.channels_last))
        return maps.contiguous() if self.spatial else self.pool(maps).flatten(1)

    def forward_pyramid(self, x: Tensor) -> list[Tensor]:
        """The map after each block, shallow to deep (strides :attr:`pyramid_strides`); the last
        is what :meth:`forward` returns with ``spatial=True``. For skip decoders."""
        if x.dim() == 3:
            x = x.unsqueeze(1)
        maps, h = [], x.contiguous(memory_format=torch.channels_last)
        for block in self.features:
            h = block(h)
            maps.append(h)
        maps[-1] = maps[-1].contiguous()
        return maps

    def split(self) -> list[Stage]:
        """One stage per conv block; the top is the last block and the global pooling."""
        first, middle, last = self.features

        def stem(x: Tensor) -> Tensor:
            x = x.unsqueeze(1) if x.dim() == 3 else x
            return first(x.contiguous(memory_format=torch.channels_last))

        def top(h: Tensor) -> Tensor:
            return self.pool(last(h)).flatten(1)

        return [stem, middle, top]
