"""What the methods' segmentation tests share: a two-stream spec, a batch with ignored pixels and
encoders from ``[B, C, 16, 16]`` inputs to ``[B, 8, 4, 4]`` maps."""

from __future__ import annotations

import torch
from torch import nn

from robustfusion.methods.base import Method, MethodSpec
from robustfusion.tasks import IGNORE_INDEX
from robustfusion.types import Batch

MODS = ("rgb", "depth")
SPEC = MethodSpec(
    modalities=MODS,
    feature_dims={"rgb": 8, "depth": 8},
    num_classes=4,
    task="segmentation",
    target_shape=(16, 16),
    input_shapes={"rgb": (3, 16, 16), "depth": (1, 16, 16)},
    input_kinds={"rgb": "image", "depth": "map"},
    hidden_dim=8,
)


def segmentation_batch(n: int = 6, seed: int = 0) -> Batch:
    """Random inputs; a void row in every image and one image without a labelled pixel."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 4, (n, 16, 16), generator=g)
    target[:, 0] = IGNORE_INDEX
    target[1] = IGNORE_INDEX
    return Batch(
        inputs={
            "rgb": torch.randn(n, 3, 16, 16, generator=g),
            "depth": torch.randn(n, 1, 16, 16, generator=g),
        },
        present={m: torch.ones(n, dtype=torch.bool) for m in MODS},
        target=target,
        index=torch.arange(n),
    )


def map_encoders(seed: int = 0) -> nn.ModuleDict:
    """``[B, C, 16, 16]`` -> ``[B, 8, 4, 4]``."""
    torch.manual_seed(seed)
    return nn.ModuleDict(
        {
            "rgb": nn.Sequential(nn.Conv2d(3, 8, 4, stride=4), nn.ReLU()),
            "depth": nn.Sequential(nn.Conv2d(1, 8, 4, stride=4), nn.ReLU()),
        }
    )


def check_weight_swaps(method: Method, encoders: nn.ModuleDict) -> None:
    """On a trained segmentation model: ``uniform`` gives 0.5 each, ``oracle`` gives the
    corrupted depth of samples 0-2 weight 0, and ``learned`` restores the outputs."""
    method.eval()
    batch = segmentation_batch()
    with torch.no_grad():
        features = method.encode(encoders, batch.inputs)
        learned = method(features, batch.present)
        method.set_weight_mode("uniform")
        uniform = method(features, batch.present)
        corrupted = torch.zeros(6, 2, dtype=torch.bool)
        corrupted[:3, 1] = True
        method.set_weight_mode("oracle", corrupted)
        oracle = method(features, batch.present)
        method.set_weight_mode("learned")
        again = method(features, batch.present)
    torch.testing.assert_close(uniform.weights, torch.full((6, 2), 0.5))
    torch.testing.assert_close(oracle.weights[:3], torch.tensor([[1.0, 0.0]] * 3))
    assert not torch.allclose(learned.logits, uniform.logits)
    torch.testing.assert_close(again.logits, learned.logits)
