"""Tests of UDML (METHODS.md §3): weights, dependency, noise injection, schedule, losses, ablations."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import spearmanr

from robustfusion.encoders.base import build_encoder
from robustfusion.errors import ConfigError
from robustfusion.methods.base import MethodSpec, build_method
from robustfusion.methods.udml import UDML
from robustfusion.model import MultimodalModel
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


def make_model(spec: MethodSpec = SPEC, **options: object) -> MultimodalModel:
    torch.manual_seed(0)
    method = build_method("udml", spec, {"udml": options})
    encoders = {m: build_encoder(None, spec.input_shapes[m], 16, spatial=True) for m in MODS}
    return MultimodalModel(encoders, method)


def test_registered_and_wants_spatial_maps() -> None:
    assert METHODS.get("udml") is UDML
    assert UDML.wants_spatial_features
    method = make_model().method
    assert method.heads["image"].spatial and method.heads["audio"].spatial
    assert not method.heads["vec"].spatial


@pytest.mark.parametrize("fusion", ["concat", "sum", "attention", "gated"])
def test_forward_with_three_modalities_and_each_fusion(fusion: str) -> None:
    model = make_model(make_spec(fusion=fusion))
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


def test_fusion_input_is_residually_weighted() -> None:
    model = make_model()
    model.eval()
    batch = make_batch()
    out = model(batch)
    method = model.method
    features = model.encode(batch.inputs)
    pooled = {m: out.extras[f"mu/{m}"].flatten(2).mean(2) for m in ("image", "audio")}
    pooled["vec"] = out.extras["mu/vec"]
    assert torch.allclose(pooled["vec"], method.heads["vec"](features["vec"])[0])
    fused = method.fusion(pooled, batch.present, 1.0 + out.extras["udml_weights"])
    assert torch.allclose(out.logits, method.classifier(fused), atol=1e-5)


def test_dependency_is_a_moving_average_updated_in_training_only_and_checkpointed() -> None:
    model = make_model(momentum=0.5)
    method = model.method
    batch = make_batch()
    assert torch.equal(method.dependency.alpha, torch.ones(3))
    model.train()
    method.on_epoch_start(0, 10)  # clean phase
    model(batch)
    first = method.dependency.alpha.clone()
    assert not torch.equal(first, torch.ones(3))
    model(batch)
    assert not torch.equal(method.dependency.alpha, first)
    model.eval()
    frozen = method.dependency.alpha.clone()
    model(batch)
    assert torch.equal(method.dependency.alpha, frozen)
    state = model.state_dict()
    assert "method.dependency.alpha" in state
    fresh = make_model(momentum=0.5)
    fresh.load_state_dict(state)
    fresh.eval()
    assert torch.allclose(fresh(batch).logits, model(batch).logits)


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
    # Noise std per kind: images v^2 x intensity scale, spectrograms v, vectors 0.1 v (on 4000
    # samples: the std of the few dozen vector entries at v = 7 of 400 samples is too noisy).
    batch = make_batch(size=4000)
    noisy = method.prepare_batch(batch, training=True)
    for m, expected in (
        ("image", lambda v: 0.02 * v**2),
        ("audio", float),
        ("vec", lambda v: 0.1 * v),
    ):
        v = noisy.noise_level[m]
        rows = v == 7
        residual = (noisy.inputs[m][rows] - batch.inputs[m][rows]).flatten()
        assert float(residual.std()) == pytest.approx(expected(7.0), rel=0.15)
    # Evaluation batches pass through untouched.
    assert method.prepare_batch(batch, training=False) is batch


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


def test_validation_selects_only_full_weight_epochs() -> None:
    method = make_model().method
    assert [method.selectable_epoch(e, 10) for e in range(10)] == [False] * 6 + [True] * 4
    short = make_model(full_weights_from=1.0).method
    assert [short.selectable_epoch(e, 3) for e in range(3)] == [False, False, True]


def test_learning_rate_steps_at_seventy_percent() -> None:
    method = make_model().method
    assert [method.lr_scale(e, 10) for e in range(10)] == [1.0] * 7 + [0.1] * 3
    assert method.lr_scale(69, 100) == 1.0 and method.lr_scale(70, 100) == 0.1


def test_losses_and_gradient_paths() -> None:
    model = make_model(gamma=2.0, beta=0.5)
    method = model.method
    method.on_epoch_start(8, 10)
    model.train()
    batch = method.prepare_batch(make_batch(), training=True)
    batch.present["audio"][:3] = False
    out = model(batch)
    losses = method.losses(out, batch)
    assert set(losses) == {"ce", "unimodal_ce", "kl", "noise_mse"}
    assert all(torch.isfinite(v) for v in losses.values())
    # The predictor is trained by its MSE only: its input sigma and the weights are detached,
    # so the task loss does not reach it and the MSE does not reach the representation.
    estimator = list(method.estimators.parameters())
    logvar_weight = method.heads["vec"].logvar[0].weight
    grads = torch.autograd.grad(losses["ce"], estimator, retain_graph=True, allow_unused=True)
    assert all(g is None for g in grads)
    grads = torch.autograd.grad(
        losses["noise_mse"], [*estimator, logvar_weight], retain_graph=True, allow_unused=True
    )
    assert all(g is not None for g in grads[:-1]) and grads[-1] is None
    # The KL reaches sigma (and the reparameterised task loss too).
    assert torch.autograd.grad(losses["kl"], logvar_weight, retain_graph=True)[0].abs().sum() > 0
    # KL uses v of the present samples only.
    from robustfusion.modules.probabilistic import gaussian_kl

    seen = batch.present["audio"]
    kl_audio = gaussian_kl(
        out.extras["mu/audio"][seen],
        out.extras["logvar/audio"][seen],
        batch.noise_level["audio"][seen],
    )
    assert float(kl_audio.detach()) > 0


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

    model = make_model(probabilistic=False)
    method = model.method
    model.train()
    model.encoders.eval()  # the mlp encoder's dropout aside, nothing is sampled
    method.on_epoch_start(0, 10)
    first, second = model(batch), model(batch)
    assert torch.allclose(first.logits, second.logits)
    losses = method.losses(first, batch)
    assert "kl" not in losses
    losses["noise_mse"].backward()
    # The learned sigma proxy is trained by the MSE, but the encoder is not.
    assert method.heads["image"].logvar[0].weight.grad is not None
    assert all(p.grad is None for p in model.encoders.parameters())


def test_bad_options_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="at least 2 modalities"):
        build_method("udml", MethodSpec(modalities=("a",), feature_dims={"a": 4}, num_classes=2))
    with pytest.raises(ConfigError, match="clean_until"):
        build_method("udml", SPEC, {"udml": {"clean_until": 0.8, "full_weights_from": 0.6}})
    with pytest.raises(ConfigError, match="use_dependency must be true or false"):
        build_method("udml", SPEC, {"udml": {"use_dependency": "false"}})
    with pytest.raises(ConfigError, match="vector_norm"):
        build_method("udml", SPEC, {"udml": {"vector_norm": "group"}})
    with pytest.raises(ConfigError, match="bad options"):
        build_method("udml", SPEC, {"udml": {"no_such_option": 1}})


def test_vector_only_and_custom_encoder_layouts() -> None:
    spec = MethodSpec(modalities=("a", "b"), feature_dims={"a": 8, "b": 8}, num_classes=2)
    method = build_method("udml", spec)
    present = {m: torch.ones(4, dtype=torch.bool) for m in ("a", "b")}
    method.eval()
    # A vector head accepts a map (pooled first).
    out = method({"a": torch.randn(4, 8), "b": torch.randn(4, 8, 2, 2)}, present)
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
    method = build_method("udml", spec, {"udml": {"beta": 1e-2, "clean_until": 0.0}})
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
    for epoch in range(40):
        method.on_epoch_start(epoch, 40)
        model.train()
        batch = method.prepare_batch(data, training=True)
        loss = sum(method.losses(model(batch), batch).values())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    means = []
    with torch.no_grad():
        for level in range(1, 12):
            noisy = method.inject(data, {"a": torch.full((n,), float(level))}, epoch=999)
            means.append(float(model(noisy).extras["sigma_hat/a"].mean()))
    rho = spearmanr(range(1, 12), means).statistic
    assert rho > 0.9, means
