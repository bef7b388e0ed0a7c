"""DMS on semantic segmentation (feature maps, ``[B, H, W]`` targets with 255 unlabelled): per-pixel
unimodal heads, per-pixel signals averaged per image into per-sample weights, the per-pixel
losses, absent modalities, the uniform twin and weight swaps, refused options, checkpoints, and a
tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _segmentation import (
    MODS,
    SPEC,
    check_weight_swaps,
    map_encoders,
    segmentation_batch,
    tiny_run,
    train_step,
)
from torch import Tensor, nn

from robustfusion.errors import ConfigError, DataError
from robustfusion.methods.base import build_method, check_task_support
from robustfusion.methods.dms import DMS
from robustfusion.modules.dms_signals import entropy_confidence
from robustfusion.modules.segmentation_head import SegmentationHead
from robustfusion.registry import DATASETS
from robustfusion.tasks import IGNORE_INDEX


def _method(**options: object) -> DMS:
    torch.manual_seed(0)
    method = build_method("dms", SPEC, {"dms": dict(options)})
    assert isinstance(method, DMS)
    return method


def test_declared_for_segmentation_with_the_task_head() -> None:
    check_task_support("dms", "segmentation")
    method = _method()
    assert isinstance(method.classifier, SegmentationHead)


@pytest.mark.parametrize("scope", ["classifier", "head"])
@pytest.mark.parametrize("consistency", ["agreement", "cosine"])
@pytest.mark.parametrize("scheduler", ["rule", "learned"])
def test_a_training_step_segments(scope: str, consistency: str, scheduler: str) -> None:
    method = _method(mc_scope=scope, consistency=consistency, scheduler=scheduler)
    encoders = map_encoders()
    terms, output, _ = train_step(method, encoders, segmentation_batch())
    assert output.logits.shape == (6, 4, 16, 16)
    for m in MODS:
        assert output.unimodal_logits is not None
        assert output.unimodal_logits[m].shape == (6, 4, 16, 16)
    assert output.weights is not None and output.weights.shape == (6, 2)
    torch.testing.assert_close(output.weights.sum(1), torch.ones(6))
    assert output.extras["shared"].shape == (6, 2, 8, 4, 4)
    for name in ("confidence", "uncertainty", "consistency"):
        assert output.extras[name].shape == (6, 2)
    assert set(terms) == {"ce", "unimodal_ce", "weight_consistency"}
    assert all(bool(torch.isfinite(t)) for t in terms.values())
    for p in [*encoders.parameters(), *method.parameters()]:
        if scheduler == "rule" and p.grad is None:
            continue  # the rule scheduler's constants
        assert p.grad is not None and bool(torch.isfinite(p.grad).all())
    assert all(p.grad is not None for p in encoders.parameters())
    assert all(p.grad is not None for p in method.heads.parameters())
    assert all(p.grad is not None for p in method.classifier.parameters())
    assert set(method.logged_values()) >= {f"dms_w_{m}" for m in MODS}


def test_confidence_is_the_per_pixel_signal_averaged_over_each_image() -> None:
    method = _method()
    encoders = map_encoders()
    method.eval()
    batch = segmentation_batch()
    with torch.no_grad():
        features = method.encode(encoders, batch.inputs)
        output = method(features, batch.present)
        for i, m in enumerate(MODS):
            head = method.heads[m]
            rows = features[m].flatten(2).transpose(1, 2)  # [B, P, D]
            _, logits = head(rows, active=False)
            expected = entropy_confidence(logits).mean(dim=1)
            torch.testing.assert_close(output.extras["confidence"][:, i], expected)


def test_losses_are_the_per_pixel_ce_over_labelled_pixels() -> None:
    method = _method(unimodal_weight=0.5)
    batch = segmentation_batch()
    terms, output, _ = train_step(method, map_encoders(), batch)
    valid = batch.target != IGNORE_INDEX
    target = batch.target.clamp_max(3)

    def ce(logits: Tensor) -> Tensor:
        pixel = nn.functional.cross_entropy(logits.detach(), target, reduction="none")
        return pixel[valid].mean()

    torch.testing.assert_close(terms["ce"].detach(), ce(output.logits))
    assert output.unimodal_logits is not None
    unimodal = sum(ce(output.unimodal_logits[m]) for m in MODS)
    torch.testing.assert_close(terms["unimodal_ce"].detach(), 0.5 * unimodal)
    assert float(terms["weight_consistency"].detach()) >= 0.0


def test_no_labelled_pixel_gives_finite_losses() -> None:
    batch = segmentation_batch()
    batch = batch.replace(target=torch.full_like(batch.target, IGNORE_INDEX))
    terms, _, _ = train_step(_method(), map_encoders(), batch)
    assert float(terms["ce"].detach()) == 0.0
    assert all(bool(torch.isfinite(t)) for t in terms.values())


def test_an_absent_modality_gets_weight_zero_and_cannot_change_the_prediction() -> None:
    method = _method()
    encoders = map_encoders()
    batch = segmentation_batch()
    absent = torch.tensor([False, True, False, False, True, False])
    present = {"rgb": torch.ones(6, dtype=torch.bool), "depth": ~absent}
    batch = batch.replace(present=present)
    terms, output, _ = train_step(method, encoders, batch)
    assert all(bool(torch.isfinite(t)) for t in terms.values())
    assert output.weights is not None
    assert bool((output.weights[absent, 1] == 0).all())
    assert bool((output.extras["confidence"][absent, 1] == 0).all())
    torch.testing.assert_close(output.weights.sum(1).detach(), torch.ones(6))
    method.eval()
    with torch.no_grad():
        features = method.encode(encoders, batch.inputs)
        first = method(features, present)
        features["depth"] = features["depth"] + 5 * absent.view(-1, 1, 1, 1)
        second = method(features, present)
    torch.testing.assert_close(first.logits, second.logits)
    torch.testing.assert_close(first.weights, second.weights)


def test_a_sample_with_every_modality_missing_is_refused() -> None:
    method = _method()
    batch = segmentation_batch()
    present = {m: torch.ones(6, dtype=torch.bool) for m in MODS}
    for m in MODS:
        present[m][0] = False
    with pytest.raises(DataError, match="every modality missing"):
        method(method.encode(map_encoders(), batch.inputs), present)


def test_evaluation_weights_do_not_depend_on_the_batch() -> None:
    method = _method()
    encoders = map_encoders()
    train_step(method, encoders, segmentation_batch())
    method.eval()
    batch = segmentation_batch(seed=2)
    with torch.no_grad():
        features = method.encode(encoders, batch.inputs)
        whole = method(features, batch.present)
        part = method(
            {m: f[:3] for m, f in features.items()}, {m: p[:3] for m, p in batch.present.items()}
        )
    torch.testing.assert_close(whole.weights[:3], part.weights)


def test_uniform_twin_and_evaluation_swaps() -> None:
    twin = _method(weights="uniform")
    _, output, _ = train_step(twin, map_encoders(), segmentation_batch())
    torch.testing.assert_close(output.weights, torch.full((6, 2), 0.5))
    assert "confidence" not in output.extras
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


@pytest.mark.parametrize("scope", ["encoder_top", "encoder"])
def test_encoder_scopes_are_refused_on_maps(scope: str) -> None:
    with pytest.raises(ConfigError, match="not defined for segmentation"):
        _method(mc_scope=scope)


def test_vector_features_are_refused_on_segmentation() -> None:
    method = _method()
    features = {m: torch.randn(6, 8) for m in MODS}
    with pytest.raises(DataError, match="feature maps"):
        method(features, segmentation_batch().present)


@pytest.mark.skipif("rgbd_scenes" not in DATASETS, reason="needs the rgbd_scenes dataset")
def test_a_tiny_end_to_end_run_on_rgbd_scenes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert tiny_run("dms", out) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "segmentation" and 0.0 <= metrics["miou"] <= 1.0
    assert abs(sum(metrics["mean_weight"].values()) - 1.0) < 1e-5


def test_consistency_reduction_mean_divides_the_map_loss_by_the_channels() -> None:
    batch = segmentation_batch()
    terms = {}
    for reduction in ("sum", "mean"):
        torch.manual_seed(0)
        method = _method(consistency_reduction=reduction)
        terms[reduction], _, _ = train_step(method, map_encoders(), batch)
    channels = method.shared_dim
    assert float(terms["sum"]["weight_consistency"].detach()) > 0
    torch.testing.assert_close(
        terms["mean"]["weight_consistency"].detach(),
        terms["sum"]["weight_consistency"].detach() / channels,
    )
