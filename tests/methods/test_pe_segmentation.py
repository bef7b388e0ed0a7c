"""PE on semantic segmentation (feature maps, ``[B, H, W]`` targets with 255 unlabelled): the map
heads, per-sample weights from sigma^2 over channels and positions, the per-pixel loss, absent
modalities, the uniform twin and weight swaps, checkpoints, and a tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _segmentation import (
    MODS,
    SPEC,
    check_absent_features_ignored,
    check_weight_swaps,
    map_encoders,
    segmentation_batch,
    tiny_run,
    train_step,
)
from torch import nn

from robustfusion.errors import ConfigError
from robustfusion.methods.base import MethodSpec, build_method, check_task_support
from robustfusion.methods.pe import ProbabilisticEmbeddingFusion
from robustfusion.modules.probabilistic import gaussian_kl
from robustfusion.modules.segmentation_head import SegmentationHead
from robustfusion.registry import DATASETS
from robustfusion.tasks import IGNORE_INDEX


def _method(**options: object) -> ProbabilisticEmbeddingFusion:
    torch.manual_seed(0)
    method = build_method("pe", SPEC, {"pe": dict(options)})
    assert isinstance(method, ProbabilisticEmbeddingFusion)
    return method


def test_declared_for_segmentation_with_map_heads_and_the_task_head() -> None:
    check_task_support("pe", "segmentation")
    method = _method()
    for m in MODS:
        head = method.heads[m]
        assert head.spatial
        for branch in (head.mu, head.logvar):
            assert isinstance(branch[0], nn.Conv2d) and branch[0].kernel_size == (1, 1)
            assert isinstance(branch[1], nn.BatchNorm2d)
    assert isinstance(_method(norm="layer").heads["rgb"].mu[1], nn.GroupNorm)
    assert isinstance(method.classifier, SegmentationHead)
    assert method.fusion.supports_maps


@pytest.mark.parametrize("fusion", ["concat", "sum"])
@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_a_training_step_segments(fusion: str, norm: str) -> None:
    spec = MethodSpec(**{**SPEC.__dict__, "fusion": fusion})
    torch.manual_seed(0)
    method = build_method("pe", spec, {"pe": {"norm": norm}})
    encoders = map_encoders()
    terms, output, _ = train_step(method, encoders, segmentation_batch())
    assert output.logits.shape == (6, 4, 16, 16)
    assert output.weights is not None and output.weights.shape == (6, 2)
    torch.testing.assert_close(output.weights.sum(1), torch.ones(6))
    assert output.extras["mu/rgb"].shape == (6, 8, 4, 4)
    assert set(terms) == {"ce", "kl"} and all(bool(torch.isfinite(t)) for t in terms.values())
    for p in [*encoders.parameters(), *method.parameters()]:
        assert p.grad is not None and bool(torch.isfinite(p.grad).all())


def test_weights_are_per_sample_inverse_mean_variance_over_channels_and_positions() -> None:
    method = _method()
    _, output, _ = train_step(method, map_encoders(), segmentation_batch())
    variance = torch.stack(
        [output.extras[f"logvar/{m}"].detach().exp().mean(dim=(1, 2, 3)) for m in MODS], dim=1
    )
    expected = (1 / variance) / (1 / variance).sum(dim=1, keepdim=True)
    torch.testing.assert_close(output.weights.detach(), expected)
    assert float(expected[:, 0].std()) > 0  # BatchNorm keeps per-sample differences


def test_losses_are_the_per_pixel_ce_and_the_kl_over_the_whole_map() -> None:
    method = _method(kl_weight=0.5)
    batch = segmentation_batch()
    terms, output, _ = train_step(method, map_encoders(), batch)
    logits = output.logits.detach()
    valid = batch.target != IGNORE_INDEX
    pixel = torch.nn.functional.cross_entropy(logits, batch.target.clamp_max(3), reduction="none")
    torch.testing.assert_close(terms["ce"].detach(), pixel[valid].mean())
    kl = sum(
        gaussian_kl(output.extras[f"mu/{m}"].detach(), output.extras[f"logvar/{m}"].detach())
        for m in MODS
    )
    torch.testing.assert_close(terms["kl"].detach(), 0.5 * kl)


def test_no_labelled_pixel_gives_a_finite_loss() -> None:
    batch = segmentation_batch()
    batch = batch.replace(target=torch.full_like(batch.target, IGNORE_INDEX))
    terms, _, _ = train_step(_method(), map_encoders(), batch)
    assert float(terms["ce"].detach()) == 0.0 and bool(torch.isfinite(terms["kl"]))


def test_an_absent_modality_gets_weight_zero_and_cannot_change_the_prediction() -> None:
    method = _method()
    encoders = map_encoders()
    batch = segmentation_batch()
    absent = torch.tensor([False, True, False, False, True, False])
    present = {"rgb": torch.ones(6, dtype=torch.bool), "depth": ~absent}
    batch = batch.replace(present=present)
    terms, output, _ = train_step(method, encoders, batch)
    assert all(bool(torch.isfinite(t)) for t in terms.values())
    assert bool((output.weights[absent, 1] == 0).all())
    torch.testing.assert_close(output.weights.sum(1).detach(), torch.ones(6))
    check_absent_features_ignored(method, encoders, batch, present, absent)


def test_one_present_sample_in_training_uses_the_running_statistics() -> None:
    method = _method()
    batch = segmentation_batch()
    present = {"rgb": torch.ones(6, dtype=torch.bool), "depth": torch.zeros(6, dtype=torch.bool)}
    present["depth"][2] = True
    terms, output, _ = train_step(method, map_encoders(), batch.replace(present=present))
    assert all(bool(torch.isfinite(t)) for t in terms.values())
    assert output.extras["mu/depth"].shape == (6, 8, 4, 4)
    assert bool((output.extras["mu/depth"][~present["depth"]] == 0).all())


def test_uniform_twin_and_evaluation_swaps() -> None:
    twin = _method(weights="uniform")
    _, output, _ = train_step(twin, map_encoders(), segmentation_batch())
    torch.testing.assert_close(output.weights, torch.full((6, 2), 0.5))
    method = _method()
    encoders = map_encoders()
    train_step(method, encoders, segmentation_batch())
    check_weight_swaps(method, encoders)


def test_state_dict_round_trip_gives_the_same_evaluation_outputs() -> None:
    method = _method()
    encoders = map_encoders()
    train_step(method, encoders, segmentation_batch())
    copy = _method()
    copy.load_state_dict(method.state_dict())
    method.eval()
    copy.eval()
    batch = segmentation_batch(seed=1)
    with torch.no_grad():
        features = method.encode(encoders, batch.inputs)
        a, b = method(features, batch.present), copy(features, batch.present)
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.weights, b.weights)


def test_vector_fusions_are_refused_on_maps() -> None:
    spec = MethodSpec(**{**SPEC.__dict__, "fusion": "attention"})
    with pytest.raises(ConfigError, match="fuses vectors only"):
        build_method("pe", spec)


@pytest.mark.skipif("rgbd_scenes" not in DATASETS, reason="needs the rgbd_scenes dataset")
def test_a_tiny_end_to_end_run_on_rgbd_scenes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert tiny_run("pe", out) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "segmentation" and 0.0 <= metrics["miou"] <= 1.0
    assert abs(sum(metrics["mean_weight"].values()) - 1.0) < 1e-5
