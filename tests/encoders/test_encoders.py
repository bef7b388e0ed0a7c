import pytest
import torch

from robustfusion.encoders import build_encoder, default_encoder_name
from robustfusion.errors import ConfigError, UnknownNameError


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((76,), "mlp"), ((40, 32), "cnn"), ((1, 8, 8), "cnn"), ((3, 32, 32), "cnn")],
)
def test_default_encoder_follows_the_rank(shape: tuple[int, ...], expected: str) -> None:
    assert default_encoder_name(shape) == expected
    encoder = build_encoder(None, shape, out_dim=32)
    out = encoder(torch.randn(2, *shape))
    assert out.shape == (2, 32) and encoder.out_dim == 32


def test_rank_four_inputs_need_a_named_encoder() -> None:
    with pytest.raises(ConfigError, match="no default encoder"):
        default_encoder_name((2, 3, 4, 5))


def test_unknown_encoder_name() -> None:
    with pytest.raises(UnknownNameError, match="unknown encoder"):
        build_encoder("vgg", (3, 8, 8))


@pytest.mark.parametrize("channels", [1, 3])
def test_resnet18_has_the_resnet18_size_and_spatial_maps(channels: int) -> None:
    encoder = build_encoder("resnet18", (channels, 64, 64), out_dim=512)
    trunk = sum(p.numel() for p in encoder.parameters())
    # torchvision's resnet18 without its fc layer has 11,176,512 parameters (3-channel stem).
    expected = 11_176_512 - (3 - channels) * 64 * 49
    assert trunk == expected
    spatial = build_encoder("resnet18", (channels, 64, 64), out_dim=512, spatial=True)
    assert spatial(torch.randn(2, channels, 64, 64)).shape == (2, 512, 2, 2)


def test_cnn_spatial_and_two_dimensional_inputs() -> None:
    encoder = build_encoder("cnn", (40, 32), out_dim=16, spatial=True)
    maps = encoder(torch.randn(3, 40, 32))
    assert maps.dim() == 4 and maps.shape[:2] == (3, 16)


def test_mlp_rejects_maps() -> None:
    with pytest.raises(ConfigError, match="vector inputs"):
        build_encoder("mlp", (8, 8))
