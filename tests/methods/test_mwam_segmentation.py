"""MWAM, modality dropout and their compositions on semantic segmentation (feature maps,
``[B, H, W]`` targets with 255 unlabelled): training steps, FRM on maps, the per-pixel auxiliary
loss, absent modalities and checkpoints."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from _segmentation import (
    SPEC,
    map_encoders,
    train_step,
)

from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, build_method, check_task_support
from robustfusion.methods.modality_dropout import ModalityDropout
from robustfusion.methods.mwam import AUX_LOGITS, MWAM
from robustfusion.methods.static import StaticFusion
from robustfusion.modules.frequency import frm
from robustfusion.tasks import IGNORE_INDEX
from robustfusion.types import Batch

COMPOSITIONS = (
    "mwam",
    "mwam+static",
    "modality_dropout",
    "mwam+modality_dropout",
    "modality_dropout+mwam",
)


def _batch(seed: int = 0, n: int = 6) -> Batch:
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 3, 16, 16, generator=g)
    smooth = F.avg_pool2d(noise, 5, stride=1, padding=2) * 4  # low-frequency: a high FRM
    target = torch.randint(0, 4, (n, 16, 16), generator=g)
    target[:, 0] = IGNORE_INDEX  # a void row in every image
    target[0, :, :5] = IGNORE_INDEX
    return Batch(
        inputs={"rgb": smooth, "depth": torch.randn(n, 1, 16, 16, generator=g)},
        present={m: torch.ones(n, dtype=torch.bool) for m in SPEC.modalities},
        target=target,
        index=torch.arange(n),
    )


def _mwam(method: Method) -> MWAM | None:
    while method is not None and not isinstance(method, MWAM):
        method = getattr(method, "inner", None)
    return method


def test_the_compositions_are_declared_for_segmentation_on_maps() -> None:
    for name in COMPOSITIONS:
        check_task_support(name, "segmentation")
        check_task_support(name, "classification")
    method = build_method("mwam+modality_dropout", SPEC)
    assert isinstance(method, MWAM) and isinstance(method.inner, ModalityDropout)
    assert isinstance(method.inner.inner, StaticFusion)
    assert method.task.feature_kind == "map"


@pytest.mark.parametrize("name", COMPOSITIONS)
@pytest.mark.parametrize("mode", ["hybrid", "gradient", "loss"])
def test_a_training_step_segments(name: str, mode: str) -> None:
    options = {"mwam": {"mode": mode}, "modality_dropout": {"p": 0.5}}
    method = build_method(name, SPEC, options)
    encoders = map_encoders()
    terms, output, batch = train_step(method, encoders, _batch())
    assert output.logits.shape == (6, 4, 16, 16)
    assert output.weights is not None and output.weights.shape == (6, 2)
    assert all(bool(torch.isfinite(t)) for t in terms.values())
    assert all(
        p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in encoders.parameters()
    )
    assert batch.target.shape == (6, 16, 16)  # modality dropout leaves the label maps alone
    mwam = _mwam(method)
    if mwam is None:
        assert set(terms) == {"ce"}
        return
    assert ("mwam_aux" in terms) == (mode != "gradient")
    if mode != "gradient":
        assert output.extras[AUX_LOGITS].shape == (2, 6, 4, 4, 4)  # on the feature grid
    logged = method.logged_values()
    for m in SPEC.modalities:
        for key in ("frm", "T", "K"):
            assert torch.isfinite(torch.tensor(logged[f"mwam.{key}.{m}"]))
        assert (logged[f"mwam.h.{m}"], logged[f"mwam.w.{m}"]) == (16.0, 16.0)  # the inputs
    assert logged["mwam.frm.rgb"] > logged["mwam.frm.depth"]  # smooth colour, noisy depth
    assert float(mwam.k.min()) >= 0.5 and float(mwam.k.max()) <= 1.5
    assert float(mwam.k[0]) < 1.0 < float(mwam.k[1])  # the dominant colour is slowed down


def test_gradient_mode_scales_each_encoder_by_its_k() -> None:
    batch = _batch()
    reference = build_method("static", SPEC)
    encoders = map_encoders()
    reference.load_state_dict(build_method("static", SPEC).state_dict())
    method = MWAM(SPEC, mode="gradient")
    method.inner.load_state_dict(reference.state_dict())
    train_step(reference, encoders, batch)
    plain = [p.grad.clone() for p in encoders.parameters()]
    encoders.zero_grad()
    train_step(method, encoders, batch)
    k = dict(zip(SPEC.modalities, method.k.tolist(), strict=True))
    assert k["rgb"] != pytest.approx(1.0)
    i = 0
    for m in SPEC.modalities:
        for p in encoders[m].parameters():
            torch.testing.assert_close(p.grad, plain[i] * k[m])
            i += 1


def test_the_auxiliary_loss_is_the_per_pixel_ce_averaged_per_sample() -> None:
    method = MWAM(SPEC, mode="loss", aux_resolution="target")
    batch = _batch()
    batch.target[3] = IGNORE_INDEX  # nothing labelled: weighs 0, no nan
    present = dict(batch.present)
    present["depth"] = torch.tensor([True, False, True, True, False, True])
    batch = batch.replace(present=present)
    terms, output, _ = train_step(method, map_encoders(), batch)
    logits = output.extras[AUX_LOGITS].detach()
    expected = torch.zeros((), dtype=logits.dtype)
    for i, m in enumerate(SPEC.modalities):
        used = [b for b in range(6) if bool(batch.present[m][b]) and b != 3]
        for b in used:
            valid = batch.target[b] != IGNORE_INDEX
            pixel = F.cross_entropy(
                logits[i, b : b + 1],
                batch.target[b : b + 1],
                ignore_index=IGNORE_INDEX,
                reduction="none",
            )
            expected = expected + method.k[i] * pixel[0][valid].mean() / len(used)
    torch.testing.assert_close(terms["mwam_aux"].detach(), expected)
    # The auxiliary heads are the linear heads at every position, upsampled to the target size.
    features = {m: map_encoders()[m](batch.inputs[m]) for m in SPEC.modalities}
    weight, bias = method.aux_heads.head("depth")
    low = torch.einsum("bdhw,cd->bchw", features["depth"], weight) + bias.view(1, -1, 1, 1)
    up = F.interpolate(low, size=(16, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(logits[1], up.detach())


def test_by_default_the_auxiliary_loss_is_taken_on_the_feature_grid() -> None:
    method = MWAM(SPEC, mode="loss")
    batch = _batch()
    terms, output, _ = train_step(method, map_encoders(), batch)
    logits = output.extras[AUX_LOGITS].detach()
    assert logits.shape == (2, 6, 4, 4, 4)
    small = batch.target[:, ::4, ::4]  # nearest downsampling of 16x16 to 4x4
    expected = torch.zeros((), dtype=logits.dtype)
    for i in range(2):
        used = [b for b in range(6) if bool((small[b] != IGNORE_INDEX).any())]
        for b in used:
            pixel = F.cross_entropy(
                logits[i, b : b + 1], small[b : b + 1], ignore_index=IGNORE_INDEX
            )
            expected = expected + method.k[i] * pixel / len(used)
    torch.testing.assert_close(terms["mwam_aux"].detach(), expected)
    with pytest.raises(ConfigError, match="aux_resolution must be feature or target"):
        MWAM(SPEC, aux_resolution="pixels")


def test_a_batch_without_labelled_pixels_gives_finite_zero_auxiliary_loss() -> None:
    method = MWAM(SPEC)
    batch = _batch()
    batch = batch.replace(target=torch.full_like(batch.target, IGNORE_INDEX))
    terms, _, _ = train_step(method, map_encoders(), batch)
    assert float(terms["ce"].detach()) == 0.0 and float(terms["mwam_aux"].detach()) == 0.0


def test_absent_modalities_are_left_out_of_frm_and_the_auxiliary_loss() -> None:
    method = build_method("mwam+modality_dropout", SPEC, {"modality_dropout": {"p": 0.6}})
    batch = _batch(3, n=16)
    dropped = method.prepare_batch(batch, True)
    assert not all(bool(dropped.present[m].all()) for m in SPEC.modalities)
    assert bool(dropped.present_matrix().any(1).all())
    for m in SPEC.modalities:
        assert bool((dropped.inputs[m][~dropped.present[m]] == 0).all())
    assert torch.equal(dropped.target, batch.target)
    expected = torch.stack(
        [frm(batch.inputs[m], dropped.present[m], reduction="mean") for m in SPEC.modalities]
    )
    terms, _, _ = train_step(method, map_encoders(), batch)
    assert set(terms) == {"ce", "mwam_aux"} and all(torch.isfinite(t) for t in terms.values())
    torch.testing.assert_close(method.frm_last, expected)
    # A modality absent from the presence mapping counts as present everywhere.
    alone = MWAM(SPEC, mode="loss").train()
    features = {m: map_encoders()[m](batch.inputs[m]) for m in SPEC.modalities}
    output = alone(features, batch.present)
    partial = batch.replace(present={"rgb": batch.present["rgb"]})
    assert torch.isfinite(alone.losses(output, partial)["mwam_aux"])


def test_feature_source_computes_frm_on_the_encoder_maps() -> None:
    method = MWAM(SPEC, mode="gradient", source="feature")
    encoders = map_encoders()
    batch = _batch()
    train_step(method, encoders, batch)
    expected = torch.stack(
        [frm(encoders[m](batch.inputs[m]), reduction="mean") for m in SPEC.modalities]
    )
    torch.testing.assert_close(method.frm_last, expected)
    assert method.frm_shapes == {"rgb": (4, 4), "depth": (4, 4)}
    assert all(torch.isfinite(torch.tensor(v)) for v in method.logged_values().values())


@pytest.mark.parametrize("name", ["mwam", "mwam+modality_dropout"])
def test_state_dict_round_trip_and_an_unchanged_inference_graph(name: str) -> None:
    method = build_method(name, SPEC)
    encoders = map_encoders()
    for seed in range(2):
        train_step(method, encoders, _batch(seed))
    twin = build_method(name, SPEC)
    twin.load_state_dict(copy.deepcopy(method.state_dict()))
    for key in ("frm_bank", "frm_last", "ratio", "k", "steps"):
        assert torch.equal(getattr(twin, key), getattr(method, key))
    method.eval()
    twin.eval()
    batch = _batch(5)
    with torch.no_grad():
        features = {m: encoders[m](batch.inputs[m]) for m in SPEC.modalities}
        out, again = method(features, batch.present), twin(features, batch.present)
        inner = method.inner(features, batch.present)
    torch.testing.assert_close(out.logits, again.logits)
    torch.testing.assert_close(out.logits, inner.logits)
    assert AUX_LOGITS not in out.extras


def test_training_on_synthetic_maps_lowers_the_loss() -> None:
    torch.manual_seed(0)
    method = build_method("mwam+modality_dropout", SPEC, {"modality_dropout": {"p": 0.2}})
    encoders = map_encoders()
    params = list(method.parameters()) + list(encoders.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-2)
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (8, 4, 4), generator=g)
    target = target.repeat_interleave(4, 1).repeat_interleave(4, 2)  # 4x4 blocks of one class
    rgb = F.one_hot(target, 4).permute(0, 3, 1, 2).float()[:, :3]
    depth = (target == 3).float().unsqueeze(1)
    batch = Batch(
        inputs={"rgb": rgb, "depth": depth},
        present={m: torch.ones(8, dtype=torch.bool) for m in SPEC.modalities},
        target=target,
        index=torch.arange(8),
    )
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        terms, _, _ = train_step(method, encoders, batch)
        losses.append(float(terms["ce"].detach()))
        optimizer.step()
    assert losses[-1] < 0.5 * losses[0]
