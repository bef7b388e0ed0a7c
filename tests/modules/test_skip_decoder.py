"""Skip scores (FCN's skip architecture): which maps, zero start, fused with the weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustfusion.modules.skip_decoder import SkipScores, skip_levels

CHANNELS = {"rgb": (4, 6, 8), "depth": (3, 5, 8)}
STRIDES = {"rgb": (2, 4, 8), "depth": (2, 4, 8)}


@pytest.mark.parametrize(
    ("strides", "levels"),
    [
        ((2, 4, 8), (0, 1)),  # cnn at 64x64
        ((4, 8, 16, 32), (0, 1, 2)),  # resnet18, output_stride 32
        ((4, 8, 16, 16), (0, 1)),  # output_stride 16: the dilated stage is not a skip
        ((4, 8, 8, 8), (0,)),  # output_stride 8: the last map of stride 4 ... and 8 is deep
        ((2, 2, 4), (1,)),  # two maps of one stride: the deeper one
        ((1, 1, 1), ()),
    ],
)
def test_the_last_map_of_each_finer_stride_is_a_skip(strides, levels) -> None:
    assert skip_levels(strides) == levels


def test_encoders_without_finer_maps_are_refused() -> None:
    with pytest.raises(ValueError, match="no encoder map is finer"):
        SkipScores({"a": (4, 4)}, {"a": (8, 8)}, 3, ("a",))


def _skips(n: int = 2, seed: int = 0) -> dict[str, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return {
        m: [
            torch.randn(n, c, 16 // s, 16 // s, generator=g)
            for c, s in zip(CHANNELS[m][:-1], (2, 4), strict=True)
        ]
        for m in ("rgb", "depth")
    }


def _randomised(decoder: SkipScores) -> SkipScores:
    torch.manual_seed(1)
    for module in decoder.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight)
            nn.init.normal_(module.bias)
    return decoder


def test_the_scores_start_at_zero_so_training_starts_from_the_one_scale_model() -> None:
    decoder = SkipScores(CHANNELS, STRIDES, 5, ("rgb", "depth"))
    out = decoder(_skips(), torch.full((2, 2), 0.5), (16, 16))
    assert out.shape == (2, 5, 16, 16)
    assert torch.count_nonzero(out) == 0


def test_modalities_are_fused_with_the_weights_and_a_zero_weight_hides_a_modality() -> None:
    decoder = _randomised(SkipScores(CHANNELS, STRIDES, 5, ("rgb", "depth")))
    skips = _skips()
    only_rgb = decoder(skips, torch.tensor([[1.0, 0.0]] * 2), (16, 16))
    only_depth = decoder(skips, torch.tensor([[0.0, 1.0]] * 2), (16, 16))
    mixed = decoder(skips, torch.tensor([[0.25, 0.75]] * 2), (16, 16))
    torch.testing.assert_close(mixed, 0.25 * only_rgb + 0.75 * only_depth)
    garbage = {**skips, "depth": [5 + 10 * s for s in skips["depth"]]}
    torch.testing.assert_close(decoder(garbage, torch.tensor([[1.0, 0.0]] * 2), (16, 16)), only_rgb)
    assert not torch.allclose(only_rgb, only_depth)


def test_modalities_with_pyramids_of_other_sizes_are_fused_at_the_finest() -> None:
    decoder = _randomised(
        SkipScores(
            {"rgb": (4, 8), "depth": (3, 5, 8)},
            {"rgb": (4, 8), "depth": (2, 4, 8)},
            2,
            ("rgb", "depth"),
        )
    )
    skips = {
        "rgb": [torch.randn(1, 4, 4, 4)],
        "depth": [torch.randn(1, 3, 8, 8), torch.randn(1, 5, 4, 4)],
    }
    assert decoder(skips, torch.tensor([[0.5, 0.5]]), (16, 16)).shape == (1, 2, 16, 16)
