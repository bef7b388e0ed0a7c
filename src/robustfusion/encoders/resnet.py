"""ResNet-18 (He et al., 2016) with 1- or 3-channel input, written here (no torchvision)."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from robustfusion.accepts import Accepts, integer
from robustfusion.encoders.base import Stage, channels_of
from robustfusion.errors import ConfigError
from robustfusion.registry import ENCODERS


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, dilation, dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, dilation, dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out))
        return (out + self.shortcut(x)).relu()


@ENCODERS.register("resnet18", "ResNet-18 for (H, W) or (C, H, W) maps, as in OGM-GE/UDML")
class ResNet18Encoder(nn.Module):
    """The standard ResNet-18 trunk; features are the 512 pooled channels, projected to ``out_dim``
    when ``out_dim != 512``.

    ``output_stride`` (32, 16 or 8) is the stride of the feature map: below 32 the last stages keep
    their resolution and dilate their convolutions instead (DeepLab's atrous ResNet, Chen et al.
    2017), which segmentation needs for a fine fused map; 32 is the plain network.
    """

    #: What each numeric option accepts (checked before anything is built).
    option_limits: ClassVar[dict[str, Accepts]] = {"output_stride": integer(8, 32)}

    def __init__(
        self,
        input_shape: tuple[int, ...],
        out_dim: int = 512,
        spatial: bool = False,
        output_stride: int = 32,
    ) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ConfigError(f"resnet18: output_stride must be 8, 16 or 32, got {output_stride}")
        self.output_stride = output_stride
        self.in_channels = channels_of(input_shape)
        self.spatial = spatial
        self.out_dim = out_dim
        self.stem = nn.Sequential(
            nn.Conv2d(self.in_channels, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
        stages, cin, reached, dilation, strides = [], 64, 4, 1, []
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            first_dilation = dilation
            if stride == 2 and reached >= output_stride:  # keep the resolution: dilate instead
                stride, dilation = 1, dilation * 2
            reached *= stride
            strides.append(reached)
            stages.append(
                nn.Sequential(
                    BasicBlock(cin, cout, stride, first_dilation),
                    BasicBlock(cout, cout, 1, dilation),
                )
            )
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.project: nn.Module = nn.Identity() if out_dim == 512 else nn.Conv2d(512, out_dim, 1)
        #: Channels and stride of each stage's output (:meth:`forward_pyramid`); the last is the
        #: projected map.
        self.pyramid_channels = (64, 128, 256, out_dim)
        self.pyramid_strides = tuple(strides)
        self.pool = nn.AdaptiveAvgPool2d(1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        maps = self.project(self.stages(self.stem(x)))
        return maps if self.spatial else self.pool(maps).flatten(1)

    def forward_pyramid(self, x: Tensor) -> list[Tensor]:
        """The map after each of the four stages, shallow to deep (strides
        :attr:`pyramid_strides`), the last one projected: it is what :meth:`forward` returns with
        ``spatial=True``. For skip decoders."""
        h = self.stem(x.unsqueeze(1) if x.dim() == 3 else x)
        maps = []
        for stage in self.stages:
            h = stage(h)
            maps.append(h)
        maps[-1] = self.project(maps[-1])
        return maps

    def split(self) -> list[Stage]:
        """Stem, the four stages, then the projection (1x1 conv) and pooling as the top; with
        ``out_dim == 512`` (no projection) the last stage and the pooling are the top."""

        def stem(x: Tensor) -> Tensor:
            return self.stem(x.unsqueeze(1) if x.dim() == 3 else x)

        def readout(last: nn.Module) -> Stage:
            def top(h: Tensor) -> Tensor:
                return self.pool(self.project(last(h))).flatten(1)

            return top

        blocks: list[nn.Module] = list(self.stages)
        if isinstance(self.project, nn.Identity):
            return [stem, *blocks[:-1], readout(blocks[-1])]
        return [stem, *blocks, readout(nn.Identity())]
