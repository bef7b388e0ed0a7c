"""What the methods' segmentation tests share: a two-stream spec, a batch with ignored pixels and
encoders from ``[B, C, 16, 16]`` inputs to ``[B, 8, 4, 4]`` maps."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from robustfusion.methods.base import Method, MethodSpec
from robustfusion.tasks import IGNORE_INDEX
from robustfusion.types import Batch, FusionOutput

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


def train_step(
    method: Method, encoders: nn.ModuleDict, batch: Batch
) -> tuple[dict[str, Tensor], FusionOutput, Batch]:
    """One training step as the trainer takes it (gradients left in place): the loss terms, the
    output and the prepared batch."""
    method.train()
    batch = method.prepare_batch(batch, True)
    output = method(method.encode(encoders, batch.inputs), batch.present)
    terms = method.losses(output, batch)
    sum(terms.values()).backward()
    method.after_backward(encoders)
    return terms, output, batch


def check_absent_features_ignored(
    method: Method,
    encoders: nn.ModuleDict,
    batch: Batch,
    present: Mapping[str, Tensor],
    absent: Tensor,
) -> None:
    """In evaluation, garbage depth features where depth is absent leave the logits unchanged."""
    method.eval()
    with torch.no_grad():
        features = method.encode(encoders, batch.inputs)
        first = method(features, present).logits
        features["depth"] = features["depth"] + 5 * absent.view(-1, 1, 1, 1)
        second = method(features, present).logits
    torch.testing.assert_close(first, second)


def tiny_run(method: str, out: Path) -> int:
    """``robustfusion train`` of ``method`` on a 16x16 ``rgbd_scenes`` for 2 epochs (exit status)."""
    from robustfusion.cli import main

    args = ["train", "--dataset", "rgbd_scenes", "--method", method, "--epochs", "2"]
    for key, value in (("size", 16), ("train", 8), ("val", 4), ("test", 4)):
        args += ["--dataset-option", f"{key}={value}"]
    args += ["--encoder", "rgb=cnn", "--encoder", "depth=cnn", "--batch-size", "4"]
    return main(
        [*args, "--feature-dim", "8", "--hidden-dim", "8", "--no-progress", "--out", str(out)]
    )
