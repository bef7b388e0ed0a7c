"""ResNet-18's output stride: dilated last stages keep the resolution segmentation needs."""

from __future__ import annotations

import pytest
import torch

from robustfusion.encoders.resnet import ResNet18Encoder
from robustfusion.errors import ConfigError


@pytest.mark.parametrize(("stride", "side"), [(32, 2), (16, 4), (8, 8)])
def test_the_feature_map_has_the_asked_stride(stride: int, side: int) -> None:
    encoder = ResNet18Encoder((3, 64, 64), out_dim=16, spatial=True, output_stride=stride)
    assert encoder(torch.randn(2, 3, 64, 64)).shape == (2, 16, side, side)


def test_dilation_keeps_the_parameters_of_the_plain_network() -> None:
    plain = ResNet18Encoder((1, 32, 32), out_dim=16)
    dilated = ResNet18Encoder((1, 32, 32), out_dim=16, output_stride=8)
    shapes = {k: v.shape for k, v in plain.state_dict().items()}
    assert shapes == {k: v.shape for k, v in dilated.state_dict().items()}  # checkpoints swap


def test_other_strides_are_refused() -> None:
    with pytest.raises(ConfigError, match="output_stride must be 8, 16 or 32"):
        ResNet18Encoder((3, 32, 32), output_stride=12)
