"""Tests of UDML (METHODS.md §3): the authors' coupling, weights and their swaps, dependency,
noise injection, schedule, losses, presets and options."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from robustfusion.encoders.base import build_encoder
from robustfusion.errors import ConfigError
from robustfusion.methods.base import MethodSpec, build_method
from robustfusion.methods.udml import (
    PAPER_TRAINING,
    PRESETS,
    SPECTROGRAM_FALLBACK_SCALE,
    UDML,
)
from robustfusion.model import MultimodalModel
from robustfusion.modules.linear_head import ConcatLinearHead
from robustfusion.modules.probabilistic import gaussian_kl_rows
from robustfusion.registry import METHODS
from robustfusion.types import Batch

MODS = ("image", "audio", "vec")
SPEC = MethodSpec(
    modalities=MODS,
    feature_dims={"image": 16, "audio": 16, "vec": 16},
    num_classes=3,
    hidden_dim=16,
    input_shapes={"image": (1, 8, 8), "audio": (1, 12, 10), "vec": (6,)},
    input_kinds={"image": "image", "audio": "spectrogram", "vec": "vector"},
    input_scales={"image": 0.02},
)
FUSIONS = ["concat", "sum", "attention", "gated"]


def make_spec(**changes: object) -> MethodSpec:
    return MethodSpec(**{**SPEC.__dict__, **changes})


def make_batch(size: int = 12, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        inputs={
            "image": torch.randn(size, 1, 8, 8, generator=g),
            "audio": torch.randn(size, 1, 12, 10, generator=g),
            "vec": torch.randn(size, 6, generator=g),
        },
        present={m: torch.ones(size, dtype=torch.bool) for m in MODS},
        target=torch.randint(0, 3, (size,), generator=g),
        index=torch.arange(size),
    )


#: The authors' structure (linear head, BatchNorm heads, clean warm-up to 0.5 / full weights from
#: 0.6) that most tests below check; the default preset departs from it (test_default_preset_*).
AUTHORS_STRUCTURE = {"vector_norm": "batch", "clean_until": 0.5, "full_weights_from": 0.6}


def make_model(spec: MethodSpec = SPEC, **options: object) -> MultimodalModel:
    torch.manual_seed(0)
    method = build_method("udml", spec, {"udml": {**AUTHORS_STRUCTURE, **options}})
    encoders = {m: build_encoder(None, spec.input_shapes[m], 16, spatial=True) for m in MODS}
    return MultimodalModel(encoders, method)


def pooled_mu(model: MultimodalModel, batch: Batch) -> dict[str, torch.Tensor]:
    out = model(batch)
    return {m: out.extras[f"mu/{m}"].flatten(2).mean(2) for m in ("image", "audio")} | {
        "vec": out.extras["mu/vec"]
    }


def test_registered_with_dynamic_weights_and_spatial_maps() -> None:
    assert METHODS.get("udml") is UDML
    assert UDML.wants_spatial_features and UDML.has_dynamic_weights
    method = make_model().method
    assert set(method.map_heads) == {"image", "audio"}
    assert method._vector_groups == [("vec",)]
    assert isinstance(method.linear_head, ConcatLinearHead)  # the authors' classifier
    assert method.coupling == "shared" and method.alpha_at == "current"
    assert not method.detach_uncertainty and method.level_draw == "per_run"


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("options", [{}, {"coupling": "decoupled", "alpha_at": "neutral"}])
def test_forward_with_three_modalities_and_each_fusion(fusion: str, options: dict) -> None:
    model = make_model(make_spec(fusion=fusion), **options)
    assert (model.method.linear_head is not None) == (fusion in ("concat", "sum"))
    batch = make_batch()
    batch.present["vec"][:4] = False
    model.eval()
    out = model(batch)
    assert out.logits.shape == (12, 3)
    assert out.weights.shape == (12, 3)
    assert torch.allclose(out.weights.sum(dim=1), torch.ones(12), atol=1e-5)
    raw = out.extras["udml_weights"]
    assert torch.allclose(raw.sum(dim=1), batch.present_matrix().sum(dim=1).float(), atol=1e-5)
    assert float(raw[:4, 2].abs().max()) == 0.0
    assert set(out.unimodal_logits) == set(MODS)


def test_weights_follow_inverse_uncertainty_times_dependency() -> None:
    model = make_model(use_estimator=False)
    method = model.method
    method.dependency.alpha.copy_(torch.tensor([1.0, 2.0, 4.0]))
    model.eval()
    out = model(make_batch())
    expected = 3 * torch.tensor([1.0, 0.5, 0.25]) / 1.75
    assert torch.allclose(out.extras["udml_weights"], expected.expand(12, 3), atol=1e-5)

    # With the estimator: w = M (s alpha)^-1 / sum (s alpha)^-1 with s = sigma_hat^2.
    model = make_model()
    model.method.dependency.alpha.copy_(torch.tensor([1.0, 2.0, 4.0]))
    model.method.estimator_ready.fill_(True)
    model.eval()
    out = model(make_batch())
    s = torch.stack([out.extras[f"sigma_hat/{m}"] for m in MODS], dim=1).pow(2)
    inverse = 1 / (s * torch.tensor([1.0, 2.0, 4.0]))
    assert torch.allclose(
        out.extras["udml_weights"], 3 * inverse / inverse.sum(1, keepdim=True), atol=1e-5
    )


@pytest.mark.parametrize("form", ["residual", "multiplicative"])
def test_linear_head_fuses_weighted_features_and_gives_shared_unimodal_logits(form: str) -> None:
    model = make_model(fusion_form=form)
    model.eval()
    batch = make_batch()
    out = model(batch)
    method = model.method
    pooled = pooled_mu(model, batch)
    w = out.extras["udml_weights"]
    scale = 1.0 + w if form == "residual" else w
    parts = [pooled[m] * scale[:, j : j + 1] for j, m in enumerate(MODS)]
    linear = method.linear_head.linear
    assert torch.allclose(out.logits, linear(torch.cat(parts, dim=1)), atol=1e-5)
    # The authors' unimodal outputs: the same layer with the other modalities zeroed.
    for j, m in enumerate(MODS):
        only = [p if k == j else torch.zeros_like(p) for k, p in enumerate(parts)]
        assert torch.allclose(out.unimodal_logits[m], linear(torch.cat(only, dim=1)), atol=1e-5)


def test_fusion_head_option_uses_the_fusion_and_classifier_with_modalities_removed() -> None:
    model = make_model(head="fusion")
    model.eval()
    batch = make_batch()
    out = model(batch)
    method = model.method
    pooled = pooled_mu(model, batch)
    scale = 1.0 + out.extras["udml_weights"]
    assert torch.allclose(
        out.logits, method.classifier(method.fusion(pooled, batch.present, scale)), atol=1e-5
    )
    for m in MODS:
        solo = {k: batch.present[k] & (k == m) for k in MODS}
        expected = method.classifier(method.fusion(pooled, solo, scale))
        assert torch.allclose(out.unimodal_logits[m], expected, atol=1e-5)


def test_dependency_is_read_at_current_weights_and_used_at_the_next_step() -> None:
    model = make_model(dependency_momentum=0.0, use_estimator=False)
    method = model.method
    batch = make_batch()
    model.train()
    method.on_epoch_start(0, 10)
    first = model(batch)
    # Step 1 used the initial alpha (ones): equal weights.
    assert torch.allclose(first.extras["udml_weights"], torch.ones(12, 3))
    solo = torch.stack([first.unimodal_logits[m] for m in MODS])
    measured = solo.detach().abs().sum(dim=2).mean(dim=1)  # the authors' calculate_a
    assert torch.allclose(method.dependency.alpha, measured, atol=1e-5)
    second = model(batch)
    inverse = 1.0 / measured
    assert torch.allclose(second.extras["udml_weights"][0], 3 * inverse / inverse.sum(), atol=1e-5)
    model.eval()
    frozen = method.dependency.alpha.clone()
    model(batch)
    assert torch.equal(method.dependency.alpha, frozen)  # evaluation never updates it


def test_dependency_moving_average_and_checkpoint() -> None:
    model = make_model(dependency_momentum=0.5)
    method = model.method
    batch = make_batch()
    model.train()
    method.on_epoch_start(0, 10)
    model(batch)
    first = method.dependency.alpha.clone()
    out = model(batch)
    solo = torch.stack([out.unimodal_logits[m] for m in MODS]).detach()
    assert torch.allclose(
        method.dependency.alpha, 0.5 * first + 0.5 * solo.abs().sum(2).mean(1), atol=1e-5
    )
    state = model.state_dict()
    assert "method.dependency.alpha" in state
    fresh = make_model(dependency_momentum=0.5)
    fresh.load_state_dict(state)
    fresh.eval()
    model.eval()
    assert torch.allclose(fresh(batch).logits, model(batch).logits)


def test_decoupled_variant_measures_alpha_at_neutral_weights_every_k_steps() -> None:
    model = make_model(
        coupling="decoupled", alpha_at="neutral", dependency_momentum=0.0, dependency_every=2
    )
    method = model.method
    assert method.unimodal is not None
    batch = make_batch()
    model.train()
    method.on_epoch_start(0, 10)
    out = model(batch)
    pooled = {m: out.extras[f"mu/{m}"] for m in MODS}  # noqa: F841 (layout check below)
    after_first = method.dependency.alpha.clone()
    assert not torch.equal(after_first, torch.ones(3))
    model(batch)
    assert torch.equal(method.dependency.alpha, after_first)  # step 2: not measured
    model(batch)
    assert not torch.equal(method.dependency.alpha, after_first)  # step 3: measured again
    # Unimodal logits come from separate heads, not from the shared one.
    assert set(out.unimodal_logits) == set(MODS)


def test_per_sample_dependency_uses_each_samples_own_alpha() -> None:
    model = make_model(per_sample_dependency=True, use_estimator=False)
    model.eval()
    out = model(make_batch())
    alpha = out.extras["dependency"]
    assert alpha.shape == (12, 3)
    assert float(alpha.std(dim=0).min()) > 0  # varies across samples
    inverse = 1 / alpha
    assert torch.allclose(
        out.extras["udml_weights"], 3 * inverse / inverse.sum(1, keepdim=True), atol=1e-5
    )


@pytest.mark.parametrize("fusion", FUSIONS)
def test_uniform_twin_and_evaluation_swaps(fusion: str) -> None:
    spec = make_spec(fusion=fusion)
    twin = make_model(spec, weights="uniform")
    twin.train()
    twin.method.on_epoch_start(8, 10)
    batch = make_batch()
    batch.present["vec"][:3] = False
    out = twin(twin.method.prepare_batch(batch, training=True))
    expected = batch.present_matrix().float() / batch.present_matrix().sum(1, keepdim=True)
    assert torch.allclose(out.weights, expected)
    assert torch.allclose(out.extras["udml_weights"], batch.present_matrix().float())

    model = make_model(spec)
    model.method.estimator_ready.fill_(True)
    model.eval()
    learned = model(batch)
    model.method.set_weight_mode("uniform")
    uniform = model(batch)
    assert torch.allclose(uniform.weights, expected)
    assert not torch.allclose(uniform.logits, learned.logits)
    corrupted = torch.zeros(12, 3, dtype=torch.bool)
    corrupted[:, 0] = True  # the image is corrupted in every sample
    model.method.set_weight_mode("oracle", corrupted)
    oracle = model(batch)
    assert torch.allclose(oracle.weights[:, 0], torch.zeros(12))
    assert torch.allclose(oracle.weights[3:, 1:], torch.full((9, 2), 0.5))
    assert torch.allclose(oracle.weights[:3, 1], torch.ones(3))  # vec absent: audio gets all
    model.method.set_weight_mode("learned")
    assert torch.allclose(model(batch).logits, learned.logits)


def test_noise_injection_levels_pure_noise_and_clean_rows() -> None:
    method = make_model().method
    method.on_epoch_start(6, 10)
    batch = make_batch(size=400)
    noisy = method.prepare_batch(batch, training=True)
    again = method.prepare_batch(batch, training=True)
    for m in MODS:
        v = noisy.noise_level[m]
        assert set(v.unique().tolist()) <= set(range(1, 12))
        assert torch.equal(noisy.inputs[m], again.inputs[m])  # reproducible
        clean = v == 1
        assert torch.equal(noisy.inputs[m][clean], batch.inputs[m][clean])
        assert 0.45 < float(clean.float().mean()) < 0.65
    # v = 11 replaces the input by pure noise: the output does not depend on the input.
    other = batch.replace(inputs={m: x + 100.0 for m, x in batch.inputs.items()})
    noisy_other = method.prepare_batch(other, training=True)
    pure = noisy.noise_level["vec"] == 11
    assert bool(pure.any())
    assert torch.allclose(noisy.inputs["vec"][pure], noisy_other.inputs["vec"][pure])
    # Noise std per kind: images v^2 x intensity scale, spectrograms without a known scale the
    # calibrated fallback x v, vectors 0.1 v (on 4000 samples: the std of the few dozen vector
    # entries at v = 7 of 400 samples is too noisy).
    batch = make_batch(size=4000)
    noisy = method.prepare_batch(batch, training=True)
    for m, expected in (
        ("image", lambda v: 0.02 * v**2),
        ("audio", lambda v: SPECTROGRAM_FALLBACK_SCALE * v),
        ("vec", lambda v: 0.1 * v),
    ):
        v = noisy.noise_level[m]
        rows = v == 7
        residual = (noisy.inputs[m][rows] - batch.inputs[m][rows]).flatten()
        assert float(residual.std()) == pytest.approx(expected(7.0), rel=0.15)
    # Evaluation batches pass through untouched.
    assert method.prepare_batch(batch, training=False) is batch


def test_spectrogram_noise_calibrated_or_in_raw_log_magnitude_units() -> None:
    levels = torch.tensor([2.0, 5.0])
    spec = make_spec(input_scales={"image": 0.02, "audio": 0.4})
    calibrated = make_model(spec).method
    assert torch.allclose(
        calibrated.noise_std("audio", levels), SPECTROGRAM_FALLBACK_SCALE * levels
    )
    raw = make_model(spec, spectrogram_noise="raw").method
    assert torch.allclose(raw.noise_std("audio", levels), 0.4 * levels)  # std v in ln|X| units
    assert make_model(spec, preset="paper").method.spectrogram_noise == "raw"
    # Raw units need the dataset's scale; without it the calibrated noise is used.
    unknown = make_model(spectrogram_noise="raw").method
    assert torch.allclose(unknown.noise_std("audio", levels), SPECTROGRAM_FALLBACK_SCALE * levels)
    explicit = make_model(spec, spectrogram_noise="raw", spectrogram_noise_scale=0.1).method
    assert torch.allclose(explicit.noise_std("audio", levels), 0.1 * levels)


def test_levels_are_fixed_per_run_or_redrawn_per_epoch() -> None:
    batch = make_batch(size=200)
    fixed = make_model().method
    fixed.on_epoch_start(6, 10)
    first = fixed.prepare_batch(batch, training=True)
    fixed.on_epoch_start(7, 10)
    second = fixed.prepare_batch(batch, training=True)
    assert torch.equal(first.noise_level["vec"], second.noise_level["vec"])
    noisy = first.noise_level["vec"] > 1
    # The levels stay, the noise itself is fresh every epoch.
    assert not torch.equal(first.inputs["vec"][noisy], second.inputs["vec"][noisy])
    redrawn = make_model(level_draw="per_epoch").method
    redrawn.on_epoch_start(6, 10)
    first = redrawn.prepare_batch(batch, training=True)
    redrawn.on_epoch_start(7, 10)
    assert not torch.equal(
        first.noise_level["vec"], redrawn.prepare_batch(batch, training=True).noise_level["vec"]
    )


def test_clean_phase_keeps_inputs_and_alpha_only_weights() -> None:
    model = make_model()
    method = model.method
    method.on_epoch_start(4, 10)
    batch = make_batch()
    prepared = method.prepare_batch(batch, training=True)
    assert all(torch.equal(prepared.inputs[m], batch.inputs[m]) for m in MODS)
    assert all(torch.equal(prepared.noise_level[m], torch.ones(12)) for m in MODS)
    model.train()
    out = model(prepared)
    assert torch.equal(out.extras["uncertainty"], torch.ones(12, 3))
    method.on_epoch_start(5, 10)  # noisy data, still alpha-only weights
    assert not method.in_clean_phase() and not method.uses_full_weights()
    model.eval()  # a model selected before the full-weights phase is evaluated with alpha only
    assert torch.equal(model(batch).extras["uncertainty"], torch.ones(12, 3))
    model.train()
    method.on_epoch_start(6, 10)
    assert method.uses_full_weights()
    out = model(method.prepare_batch(batch, training=True))
    assert not torch.equal(out.extras["uncertainty"], torch.ones(12, 3))
    assert bool(method.estimator_ready) and "method.estimator_ready" in model.state_dict()
    model.eval()
    assert not torch.equal(model(batch).extras["uncertainty"], torch.ones(12, 3))


def test_the_schedule_and_vector_norm_come_from_the_preset() -> None:
    # both presets keep the authors' structure; a given option wins over the preset
    for preset in ("default", "paper"):
        method = build_method("udml", SPEC, {"udml": {"preset": preset}})
        assert (method.clean_until, method.full_weights_from) == (0.5, 0.6)
        assert method.head_kind == "linear" and isinstance(method.linear_head, ConcatLinearHead)
        assert PRESETS[preset]["vector_norm"] == "batch"
    short = build_method("udml", SPEC, {"udml": {"clean_until": 0.2, "full_weights_from": 0.3}})
    assert [short.selectable_epoch(e, 10) for e in range(10)] == [False] * 3 + [True] * 7


def test_validation_selects_only_full_weight_epochs() -> None:
    method = make_model().method
    assert [method.selectable_epoch(e, 10) for e in range(10)] == [False] * 6 + [True] * 4
    short = make_model(full_weights_from=1.0).method
    assert [short.selectable_epoch(e, 3) for e in range(3)] == [False, False, True]


def test_learning_rate_steps_at_seventy_percent() -> None:
    method = make_model().method
    assert [method.lr_scale(e, 10) for e in range(10)] == [1.0] * 7 + [0.1] * 3
    assert method.lr_scale(69, 100) == 1.0 and method.lr_scale(70, 100) == 0.1


def test_losses_match_per_modality_definitions() -> None:
    model = make_model(gamma=2.0, beta=0.5)
    method = model.method
    method.on_epoch_start(8, 10)
    model.train()
    batch = method.prepare_batch(make_batch(), training=True)
    batch.present["audio"][:3] = False
    out = model(batch)
    losses = method.losses(out, batch)
    assert set(losses) == {"ce", "unimodal_ce", "kl", "noise_mse"}
    unimodal, kl, mse = 0.0, 0.0, 0.0
    for m in MODS:
        seen = batch.present[m]
        v = batch.noise_level[m][seen]
        unimodal += F.cross_entropy(out.unimodal_logits[m][seen], batch.target[seen])
        kl += gaussian_kl_rows(
            out.extras[f"mu/{m}"][seen], out.extras[f"logvar/{m}"][seen], v
        ).mean()
        mse += F.mse_loss(out.extras[f"sigma_hat/{m}"][seen], v)
    assert torch.allclose(losses["ce"], F.cross_entropy(out.logits, batch.target))
    assert torch.allclose(losses["unimodal_ce"], 2.0 * unimodal, atol=1e-4)
    assert torch.allclose(losses["kl"], 0.5 * kl, rtol=1e-4)
    assert torch.allclose(losses["noise_mse"], 0.1 * mse, atol=1e-4)


@pytest.mark.parametrize("detach", [False, True])
def test_gradient_paths(detach: bool) -> None:
    model = make_model(detach_uncertainty=detach)
    method = model.method
    method.on_epoch_start(8, 10)
    model.train()
    batch = method.prepare_batch(make_batch(), training=True)
    out = model(batch)
    losses = method.losses(out, batch)
    estimator = list(method.estimators.parameters())
    # [code] The task loss reaches the predictor through the weights (unless detached).
    grads = torch.autograd.grad(losses["ce"], estimator, retain_graph=True, allow_unused=True)
    reached = any(g is not None and float(g.abs().sum()) > 0 for g in grads)
    assert reached is not detach
    # The MSE trains the predictor but not the representation it reads (detached sigma).
    logvar_weight = method.map_heads["image"].logvar[0].weight
    grads = torch.autograd.grad(
        losses["noise_mse"], [*estimator, logvar_weight], retain_graph=True, allow_unused=True
    )
    assert all(g is not None for g in grads[:-1]) and grads[-1] is None
    # The KL reaches sigma; the unimodal CE trains the shared head and the encoders.
    assert torch.autograd.grad(losses["kl"], logvar_weight, retain_graph=True)[0].abs().sum() > 0
    head_weight = method.linear_head.linear.weight
    grad = torch.autograd.grad(losses["unimodal_ce"], head_weight, retain_graph=True)[0]
    assert float(grad.abs().sum()) > 0


def test_ablations_change_the_model() -> None:
    batch = make_batch()
    model = make_model(use_estimator=False)
    assert len(model.method.estimators) == 0
    model.method.on_epoch_start(9, 10)
    model.train()
    assert "noise_mse" not in model.method.losses(model(batch), batch)

    model = make_model(use_dependency=False)
    model.eval()
    out = model(batch)
    assert torch.equal(out.extras["dependency"], torch.ones(12, 3))

    model = make_model(probabilistic=False, use_dependency=False)
    method = model.method
    model.train()
    model.encoders.eval()  # the mlp encoder's dropout aside, nothing is sampled (alpha = 1)
    method.on_epoch_start(0, 10)
    first, second = model(batch), model(batch)
    assert torch.allclose(first.logits, second.logits)
    losses = method.losses(first, batch)
    assert "kl" not in losses
    losses["noise_mse"].backward()
    # The learned sigma proxy is trained by the MSE, but the encoder is not.
    assert method.map_heads["image"].logvar[0].weight.grad is not None
    assert method.vector_heads[0].weight.grad is not None
    assert all(p.grad is None or not p.grad.any() for p in model.encoders.parameters())


def test_presets_and_training_defaults() -> None:
    paper = make_model(preset="paper").method
    assert (paper.gamma, paper.beta, paper.dependency.momentum) == (4.0, 1e-5, 0.0)
    assert paper.head_kind == "linear" and not paper.detach_uncertainty
    assert UDML.training_defaults({"preset": "paper"}) == PAPER_TRAINING
    assert PAPER_TRAINING == {
        "optimizer": "sgd",
        "lr": 1e-3,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "gradient_clip_val": 40.0,
    }
    assert UDML.training_defaults({}) == {}
    # An explicit option wins over the preset.
    assert make_model(preset="paper", gamma=2.5).method.gamma == 2.5
    # The linear layer exists for concat and sum only; the preset falls back to the fusion head.
    assert make_model(make_spec(fusion="attention"), preset="paper").method.head_kind == "fusion"


def test_bad_options_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="at least 2 modalities"):
        build_method("udml", MethodSpec(modalities=("a",), feature_dims={"a": 4}, num_classes=2))
    with pytest.raises(ConfigError, match="clean_until"):
        build_method("udml", SPEC, {"udml": {"clean_until": 0.8, "full_weights_from": 0.6}})
    with pytest.raises(ConfigError, match="use_dependency must be true or false"):
        build_method("udml", SPEC, {"udml": {"use_dependency": "false"}})
    for name, value in (
        ("vector_norm", "group"),
        ("map_norm", "instance"),
        ("coupling", "loose"),
        ("alpha_at", "later"),
        ("head", "mlp"),
        ("fusion_form", "additive"),
        ("level_draw", "per_step"),
        ("spectrogram_noise", "loud"),
        ("preset", "cvpr"),
        ("weights", "oracle"),
    ):
        with pytest.raises(ConfigError, match=name):
            build_method("udml", SPEC, {"udml": {name: value}})
    with pytest.raises(ConfigError, match="head=linear"):
        build_method("udml", make_spec(fusion="gated"), {"udml": {"head": "linear"}})
    with pytest.raises(ConfigError, match="dependency_every"):
        build_method("udml", SPEC, {"udml": {"dependency_every": 0}})
    with pytest.raises(ConfigError, match="per_sample_dependency"):
        build_method("udml", SPEC, {"udml": {"per_sample_dependency": True, "dependency_every": 2}})
    with pytest.raises(ConfigError, match="dependency_momentum"):
        build_method("udml", SPEC, {"udml": {"dependency_momentum": 1.0}})
    with pytest.raises(ConfigError, match="bad options"):
        build_method("udml", SPEC, {"udml": {"no_such_option": 1}})


def test_vector_only_groups_and_custom_encoder_layouts() -> None:
    spec = MethodSpec(
        modalities=("a", "b", "c"), feature_dims={"a": 8, "b": 8, "c": 4}, num_classes=2
    )
    method = build_method("udml", spec)
    assert method._vector_groups == [("a", "b"), ("c",)]
    present = {m: torch.ones(4, dtype=torch.bool) for m in ("a", "b", "c")}
    method.eval()
    # A vector head accepts a map (pooled first).
    out = method(
        {"a": torch.randn(4, 8), "b": torch.randn(4, 8, 2, 2), "c": torch.randn(4, 4)}, present
    )
    assert out.logits.shape == (4, 2)


def test_training_teaches_the_estimator_a_monotonic_response() -> None:
    """A short noisy training run: the mean predicted level rises with the injected level."""
    torch.manual_seed(0)
    spec = MethodSpec(
        modalities=("a", "b"),
        feature_dims={"a": 16, "b": 16},
        num_classes=3,
        hidden_dim=16,
        input_shapes={"a": (8,), "b": (8,)},
        input_kinds={"a": "vector", "b": "vector"},
    )
    method = build_method("udml", spec, {"udml": {"clean_until": 0.0, "level_draw": "per_epoch"}})
    encoders = {m: build_encoder(None, (8,), 16) for m in ("a", "b")}
    model = MultimodalModel(encoders, method)
    n = 256
    target = torch.arange(n) % 3
    centres = torch.randn(3, 8)
    inputs = {m: centres[target] + 0.5 * torch.randn(n, 8) for m in ("a", "b")}
    data = Batch(
        inputs, {m: torch.ones(n, dtype=torch.bool) for m in inputs}, target, torch.arange(n)
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(80):  # 40 full-batch steps suffice for most initialisations, not all
        method.on_epoch_start(epoch, 80)
        model.train()
        batch = method.prepare_batch(data, training=True)
        loss = sum(method.losses(model(batch), batch).values())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    means = []
    with torch.no_grad():
        for level in range(1, 11):
            noisy = method.inject(data, {"a": torch.full((n,), float(level))}, epoch=999)
            means.append(float(model(noisy).extras["sigma_hat/a"].mean()))
    rho = spearmanr(range(1, 11), means).statistic
    assert rho > 0.9, means
