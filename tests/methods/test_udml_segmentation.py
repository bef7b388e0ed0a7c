"""UDML on semantic segmentation (feature maps, ``[B, H, W]`` targets with 255 unlabelled): maps
kept to the shared segmentation head, per-sample weights, per-pixel unimodal losses, the
dependency per sample, depth noise in metres, absent modalities, the uniform twin and weight swaps,
checkpoints, measurement passes that leave BatchNorm statistics alone, and a tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
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
from robustfusion.methods.udml import MAP_NOISE_RANGE, UDML, MapUnimodalHeads
from robustfusion.modules.dependency import kept_norm_statistics
from robustfusion.modules.segmentation_head import SegmentationHead
from robustfusion.registry import DATASETS
from robustfusion.tasks import IGNORE_INDEX
from robustfusion.types import Batch


def _spec(**changes: object) -> MethodSpec:
    return MethodSpec(**{**SPEC.__dict__, **changes})


def _method(spec: MethodSpec = SPEC, **options: object) -> UDML:
    torch.manual_seed(0)
    method = build_method("udml", spec, {"udml": dict(options)})
    assert isinstance(method, UDML)
    return method


def test_declared_for_segmentation_keeping_maps_to_the_task_head() -> None:
    check_task_support("udml", "segmentation")
    method = _method()
    assert set(method.map_heads) == set(MODS) and not method.vector_heads
    assert method.head_kind == "fusion" and method.linear_head is None
    assert isinstance(method.classifier, SegmentationHead) and method.fusion.supports_maps
    decoupled = _method(coupling="decoupled")
    assert isinstance(decoupled.unimodal, MapUnimodalHeads)
    assert all(isinstance(h, SegmentationHead) for h in decoupled.unimodal.heads.values())


def test_the_linear_head_and_vector_fusions_are_refused_on_maps() -> None:
    with pytest.raises(ConfigError, match="head=fusion"):
        _method(head="linear")
    with pytest.raises(ConfigError, match="fuses vectors only"):
        _method(_spec(fusion="gated"))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"preset": "paper"},
        {"coupling": "decoupled"},
        {"alpha_at": "neutral"},
        {"per_sample_dependency": True},
        {"probabilistic": False},
        {"fusion_form": "multiplicative"},
        {"map_norm": "layer"},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default",
)
@pytest.mark.parametrize("fusion", ["concat", "sum"])
def test_a_training_step_segments(options: dict, fusion: str) -> None:
    method = _method(_spec(fusion=fusion), **options)
    method.on_epoch_start(9, 10)  # the noisy, full-weights phase
    encoders = map_encoders()
    terms, output, batch = train_step(method, encoders, segmentation_batch())
    assert output.logits.shape == (6, 4, 16, 16)
    assert output.unimodal_logits is not None
    assert all(output.unimodal_logits[m].shape == (6, 4, 16, 16) for m in MODS)
    assert output.weights is not None and output.weights.shape == (6, 2)
    torch.testing.assert_close(output.weights.sum(1).detach(), torch.ones(6))
    assert set(terms) >= {"ce", "unimodal_ce", "noise_mse"}
    assert all(bool(torch.isfinite(t)) for t in terms.values())
    assert torch.equal(
        batch.target, segmentation_batch().target
    )  # noise leaves the label maps alone
    assert any(bool((batch.noise_level[m] > 1).any()) for m in MODS)
    for p in encoders.parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all())
    assert all(bool(torch.isfinite(v)) for v in map(torch.tensor, method.logged_values().values()))


def test_weights_and_dependency_are_per_sample_from_pixel_means() -> None:
    method = _method(per_sample_dependency=True)
    encoders = map_encoders()
    _, output, _ = train_step(method, encoders, segmentation_batch())
    alpha = output.extras["dependency"]
    uncertainty = output.extras["uncertainty"]
    assert alpha.shape == uncertainty.shape == (6, 2)
    inverse = 1 / (alpha * uncertainty)
    torch.testing.assert_close(
        output.weights.detach(), (inverse / inverse.sum(1, keepdim=True)).detach()
    )
    # Each sample's alpha: sum_c |logits| of the shared head with the other modality removed, at
    # neutral weights (2), averaged over the pixels.
    method.eval()
    with torch.no_grad():
        features = method.encode(encoders, segmentation_batch().inputs)
        z = {m: method.map_heads[m].mu(features[m]) for m in MODS}
        alone = method._fused_logits(
            z,
            {"rgb": torch.ones(6, dtype=torch.bool), "depth": torch.zeros(6, dtype=torch.bool)},
            torch.full((6, 2), 2.0),
        )
        evaluated = method(features, segmentation_batch().present)
    assert alone.shape == (6, 4, 16, 16)
    expected = alone.abs().sum(1).mean(dim=(1, 2))
    torch.testing.assert_close(evaluated.extras["dependency"][:, 0], expected)


def test_the_shared_alpha_is_the_pixel_mean_of_the_solo_logits() -> None:
    method = _method()
    _, output, _ = train_step(method, map_encoders(), segmentation_batch())
    solo = torch.stack([output.unimodal_logits[m].detach() for m in MODS])
    expected = solo.abs().sum(2).mean(dim=(2, 3)).mean(1)
    torch.testing.assert_close(method.dependency.alpha, expected)


def test_unimodal_losses_are_the_task_loss_over_labelled_pixels_of_present_samples() -> None:
    method = _method()
    batch = segmentation_batch()
    absent = torch.tensor([False, False, True, False, True, False])
    batch = batch.replace(present={"rgb": torch.ones(6, dtype=torch.bool), "depth": ~absent})
    terms, output, batch = train_step(method, map_encoders(), batch)
    expected = torch.zeros(())
    for m in MODS:
        keep = batch.present[m].view(-1, 1, 1) & (batch.target != IGNORE_INDEX)
        pixel = F.cross_entropy(
            output.unimodal_logits[m].detach(), batch.target.clamp_max(3), reduction="none"
        )
        expected = expected + pixel[keep].mean()
    torch.testing.assert_close(terms["unimodal_ce"].detach(), method.gamma * expected)
    valid = batch.target != IGNORE_INDEX
    pixel = F.cross_entropy(output.logits.detach(), batch.target.clamp_max(3), reduction="none")
    torch.testing.assert_close(terms["ce"].detach(), pixel[valid].mean())


def test_no_labelled_pixel_gives_finite_zero_task_losses() -> None:
    batch = segmentation_batch()
    batch = batch.replace(target=torch.full_like(batch.target, IGNORE_INDEX))
    terms, _, _ = train_step(_method(), map_encoders(), batch)
    assert float(terms["ce"].detach()) == 0.0 and float(terms["unimodal_ce"].detach()) == 0.0
    assert all(bool(torch.isfinite(t)) for t in terms.values())


def test_an_absent_modality_gets_weight_zero_and_cannot_change_the_prediction() -> None:
    method = _method()
    encoders = map_encoders()
    absent = torch.tensor([False, True, False, False, True, False])
    present = {"rgb": torch.ones(6, dtype=torch.bool), "depth": ~absent}
    terms, output, _ = train_step(method, encoders, segmentation_batch().replace(present=present))
    assert all(bool(torch.isfinite(t)) for t in terms.values())
    assert bool((output.weights[absent, 1] == 0).all())
    assert bool((output.unimodal_logits["depth"][absent] == 0).all())
    check_absent_features_ignored(method, encoders, segmentation_batch(), present, absent)


def test_uniform_twin_and_evaluation_swaps() -> None:
    twin = _method(weights="uniform")
    _, output, _ = train_step(twin, map_encoders(), segmentation_batch())
    torch.testing.assert_close(output.weights, torch.full((6, 2), 0.5))
    torch.testing.assert_close(output.extras["udml_weights"], torch.ones(6, 2))
    method = _method()
    encoders = map_encoders()
    train_step(method, encoders, segmentation_batch())
    check_weight_swaps(method, encoders)


def test_state_dict_round_trip_gives_the_same_evaluation_outputs() -> None:
    method = _method(coupling="decoupled")
    encoders = map_encoders()
    train_step(method, encoders, segmentation_batch())
    copy = _method(coupling="decoupled")
    copy.load_state_dict(method.state_dict())
    torch.testing.assert_close(copy.dependency.alpha, method.dependency.alpha)
    method.eval()
    copy.eval()
    batch = segmentation_batch(seed=1)
    with torch.no_grad():
        features = method.encode(encoders, batch.inputs)
        a, b = method(features, batch.present), copy(features, batch.present)
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.weights, b.weights)
    for m in MODS:
        torch.testing.assert_close(a.unimodal_logits[m], b.unimodal_logits[m])


def test_measurement_passes_leave_the_heads_batchnorm_statistics_alone() -> None:
    # The neutral-weights measurement of alpha runs the segmentation head on solo rows: only the
    # training pass itself may move its running statistics.
    measured = _method(alpha_at="neutral")
    plain = _method(alpha_at="neutral", use_dependency=False)
    plain.load_state_dict(measured.state_dict())
    batch = segmentation_batch()
    torch.manual_seed(1)  # the same sampling noise in both
    train_step(measured, map_encoders(), batch)
    torch.manual_seed(1)
    train_step(plain, map_encoders(), batch)
    norm = measured.classifier.refine[1]
    assert norm.num_batches_tracked == 1
    torch.testing.assert_close(norm.running_mean, plain.classifier.refine[1].running_mean)
    torch.testing.assert_close(norm.running_var, plain.classifier.refine[1].running_var)
    # And the context manager alone: statistics kept, a pending backward still works.
    layer = nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2)).train()
    x = torch.randn(4, 2, 3, 3)
    loss = layer(x).pow(2).sum()
    before = [b.clone() for b in layer[1].buffers()]
    with kept_norm_statistics(layer, None), torch.no_grad():
        layer(x + 3)
    loss.backward()
    for b, saved in zip(layer[1].buffers(), before, strict=True):
        assert torch.equal(b, saved)


def test_depth_noise_is_in_metres_when_the_scale_is_known() -> None:
    per_metre = 1 / 1.5  # stored change per metre (a depth std of 1.5 m)
    method = _method(_spec(input_scales={"rgb": 1 / 60.0, "depth": per_metre}))
    v = torch.tensor([2.0, 4.0, 10.0])
    metres = v**2 * MAP_NOISE_RANGE / 255.0
    torch.testing.assert_close(method.noise_std("depth", v), metres * per_metre)
    torch.testing.assert_close(metres, torch.tensor([0.1569, 0.6275, 3.9216]), atol=1e-4, rtol=0)
    torch.testing.assert_close(method.noise_std("rgb", v), v**2 / 60.0)
    wider = _method(_spec(input_scales={"depth": per_metre}), map_noise_range=20.0).noise_std(
        "depth", v
    )
    torch.testing.assert_close(wider, 2 * metres * per_metre)
    # Without a known unit a map keeps the stored-unit rule.
    torch.testing.assert_close(_method().noise_std("depth", v), 0.1 * v)
    with pytest.raises(ConfigError):
        _method(map_noise_range=0.0)


def test_injected_depth_noise_has_the_level_std() -> None:
    method = _method(_spec(input_scales={"depth": 0.5}))
    n = 4
    batch = Batch(
        inputs={"rgb": torch.zeros(n, 3, 16, 16), "depth": torch.zeros(n, 1, 64, 64)},
        present={m: torch.ones(n, dtype=torch.bool) for m in MODS},
        target=torch.zeros(n, 16, 16, dtype=torch.long),
        index=torch.arange(n),
    )
    levels = {"depth": torch.tensor([1.0, 3.0, 6.0, 11.0])}
    noisy = method.inject(batch, levels).inputs["depth"]
    std = noisy.flatten(1).std(dim=1)
    expected = levels["depth"] ** 2 * MAP_NOISE_RANGE / 255.0 * 0.5
    assert float(std[0]) == 0.0
    torch.testing.assert_close(std[1:], expected[1:], rtol=0.05, atol=0)


@pytest.mark.skipif("rgbd_scenes" not in DATASETS, reason="needs the rgbd_scenes dataset")
def test_a_tiny_end_to_end_run_on_rgbd_scenes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert tiny_run("udml", out) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "segmentation" and 0.0 <= metrics["miou"] <= 1.0
    assert set(metrics["unimodal_miou"]) == set(MODS)
    assert abs(sum(metrics["mean_weight"].values()) - 1.0) < 1e-5
