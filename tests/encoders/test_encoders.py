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


def _compose(stages: list, x: torch.Tensor) -> torch.Tensor:
    for stage in stages:
        x = stage(x)
    return x


@pytest.mark.parametrize(
    ("name", "shape", "out_dim", "count"),
    [
        ("mlp", (12,), 16, 2),
        ("cnn", (1, 8, 8), 16, 3),
        ("cnn", (40, 32), 16, 3),
        ("resnet18", (3, 32, 32), 32, 6),  # stem, four stages, projection (the top)
        ("resnet18", (1, 32, 32), 512, 5),  # no projection: the last stage is the top
    ],
)
def test_split_composes_to_the_forward_in_both_modes(
    name: str, shape: tuple[int, ...], out_dim: int, count: int
) -> None:
    from robustfusion.encoders.base import encoder_stages

    torch.manual_seed(0)
    encoder = build_encoder(name, shape, out_dim=out_dim).eval()
    x = torch.randn(3, *shape)
    stages = encoder_stages(encoder)
    assert len(stages) == count
    torch.testing.assert_close(_compose(stages, x), encoder(x))
    encoder.train()  # dropout and batch statistics: the same random draws give the same output
    torch.manual_seed(1)
    expected = encoder(x)
    torch.manual_seed(1)
    torch.testing.assert_close(_compose(stages, x), expected)


def test_encoder_without_split_is_a_config_error() -> None:
    from robustfusion.encoders.base import encoder_stages

    with pytest.raises(ConfigError, match="split"):
        encoder_stages(torch.nn.Linear(3, 4))


def test_identity_encoder_passes_vectors_through_with_their_size() -> None:
    encoder = build_encoder("identity", (7,), out_dim=128)
    x = torch.randn(3, 7)
    assert encoder.out_dim == 7 and torch.equal(encoder(x), x)
    with pytest.raises(ConfigError, match="vector inputs"):
        build_encoder("identity", (1, 8, 8))


def test_cnn_runs_channels_last_with_the_default_layouts_values_and_state_dict() -> None:
    from robustfusion.encoders.cnn import SmallCNNEncoder

    torch.manual_seed(0)
    encoder = SmallCNNEncoder((1, 20, 17), out_dim=16, width=8).eval()
    assert encoder.features[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    reference = SmallCNNEncoder((1, 20, 17), out_dim=16, width=8).eval()
    reference.features.to(memory_format=torch.contiguous_format)
    reference.load_state_dict(encoder.state_dict())  # a state dict loads across layouts
    x = torch.randn(5, 20, 17)
    with torch.no_grad():
        expected = reference.pool(reference.features(x.unsqueeze(1))).flatten(1)
        torch.testing.assert_close(encoder(x), expected, rtol=1e-5, atol=1e-5)
    spatial = SmallCNNEncoder((1, 20, 17), out_dim=16, width=8, spatial=True)
    assert spatial(x).is_contiguous()  # maps are handed on in the default layout


@pytest.mark.parametrize(
    ("name", "options", "shape"),
    [
        ("cnn", {}, (3, 64, 64)),
        ("cnn", {}, (1, 6, 6)),  # too small for the last pooling
        ("resnet18", {"output_stride": 32}, (3, 64, 64)),
        ("resnet18", {"output_stride": 16}, (1, 64, 64)),
        ("resnet18", {"output_stride": 8}, (3, 64, 64)),
    ],
)
def test_the_pyramid_ends_in_the_spatial_output_and_has_the_stated_strides(
    name: str, options: dict, shape: tuple[int, ...]
) -> None:
    from robustfusion.registry import ENCODERS

    torch.manual_seed(0)
    encoder = ENCODERS.get(name)(shape, out_dim=16, spatial=True, **options).eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        maps = encoder.forward_pyramid(x)
        torch.testing.assert_close(maps[-1], encoder(x))
    assert len(maps) == len(encoder.pyramid_channels) == len(encoder.pyramid_strides)
    for feature, channels, stride in zip(
        maps, encoder.pyramid_channels, encoder.pyramid_strides, strict=True
    ):
        assert feature.shape[1] == channels
        assert feature.shape[-2:] == tuple(-(-side // stride) for side in shape[-2:])
