"""DMS method: weights, clean-vs-noise scheduling, losses, missing modalities, MC masks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from robustfusion.errors import ConfigError, DataError
from robustfusion.methods import MethodSpec, build_method
from robustfusion.methods.dms import DMS
from robustfusion.modules.mc_dropout import StackedHeads
from robustfusion.types import Batch

MODALITIES = ("a", "b")


def _spec(dims: int = 8, classes: int = 4) -> MethodSpec:
    return MethodSpec(
        modalities=MODALITIES,
        feature_dims={m: dims for m in MODALITIES},
        num_classes=classes,
        hidden_dim=32,
    )


def _data(n: int, seed: int, dims: int = 8, classes: int = 4) -> tuple[dict[str, Tensor], Tensor]:
    """Two views of the same class: a class prototype per view plus small noise."""
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(2, classes, dims, generator=torch.Generator().manual_seed(123)) * 2
    y = torch.randint(classes, (n,), generator=g)
    x = {
        m: prototypes[i, y] + 0.5 * torch.randn(n, dims, generator=g)
        for i, m in enumerate(MODALITIES)
    }
    return x, y


def _present(n: int) -> dict[str, Tensor]:
    return {m: torch.ones(n, dtype=torch.bool) for m in MODALITIES}


def _train(method: DMS, steps: int = 150, seed: int = 0) -> DMS:
    torch.manual_seed(seed)
    x, y = _data(256, seed)
    optimiser = torch.optim.Adam(method.parameters(), lr=1e-2)
    method.train()
    for step in range(steps):
        idx = torch.arange(step * 32, step * 32 + 32) % 256
        batch = Batch({m: x[m][idx] for m in MODALITIES}, _present(32), y[idx], idx)
        output = method(batch.inputs, batch.present)
        loss = sum(method.losses(output, batch).values())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return method.eval()


@pytest.fixture(scope="module")
def trained_rule() -> DMS:
    return _train(DMS(_spec(), scheduler="rule"))


def test_weights_sum_to_one_and_outputs_have_the_contract_shapes() -> None:
    torch.manual_seed(0)
    method = DMS(_spec(), T=4).eval()
    x, _ = _data(5, 1)
    out = method(x, _present(5))
    assert out.logits.shape == (5, 4)
    assert out.weights.shape == (5, 2)
    assert out.modalities == MODALITIES
    assert torch.allclose(out.weights.sum(1), torch.ones(5))
    assert set(out.unimodal_logits) == set(MODALITIES)
    for name in ("uncertainty", "consistency"):
        values = out.extras[name]
        assert values.shape == (5, 2) and bool(((values >= 0) & (values <= 1)).all())
    # the paper's confidence 1 - H(p), in nats
    logits = torch.stack([out.unimodal_logits[m] for m in MODALITIES], 1)
    p = torch.softmax(logits, -1)
    torch.testing.assert_close(out.extras["confidence"], 1 + (p * p.log()).sum(-1))


@pytest.mark.parametrize("corrupted", MODALITIES)
def test_clean_modality_outweighs_pure_noise(trained_rule: DMS, corrupted: str) -> None:
    x, y = _data(200, seed=5)
    clean = trained_rule(x, _present(200))
    assert (clean.logits.argmax(1) == y).float().mean() > 0.9
    noisy = dict(x)
    noisy[corrupted] = 3.0 * torch.randn(200, 8, generator=torch.Generator().manual_seed(9))
    out = trained_rule(noisy, _present(200))
    j = MODALITIES.index(corrupted)
    other = 1 - j
    # tau=1 keeps the weights soft (the signals lie in [0, 1]); the clean one wins on average and
    # in the large majority of samples
    assert float(out.weights[:, other].mean()) > 0.55
    assert float((out.weights[:, other] > out.weights[:, j]).float().mean()) > 0.8
    # the noisy modality looks less confident and more uncertain than the clean one
    assert out.extras["confidence"][:, j].mean() < out.extras["confidence"][:, other].mean()
    assert out.extras["uncertainty"][:, j].mean() > out.extras["uncertainty"][:, other].mean()
    # and the fused prediction survives the noise
    assert (out.logits.argmax(1) == y).float().mean() > 0.7
    # a lower temperature sharpens the same preference
    trained_rule.scheduler.tau = 0.1
    try:
        sharp = trained_rule(noisy, _present(200))
    finally:
        trained_rule.scheduler.tau = 1.0
    assert float(sharp.weights[:, other].mean()) > float(out.weights[:, other].mean())


def test_learned_scheduler_trains_and_weights_sum_to_one() -> None:
    method = _train(DMS(_spec(), scheduler="learned", T=4), steps=60)
    x, y = _data(64, seed=3)
    out = method(x, _present(64))
    assert torch.allclose(out.weights.sum(1), torch.ones(64))
    assert (out.logits.argmax(1) == y).float().mean() > 0.9
    # training moved the scheduler away from its uniform start
    assert float((out.weights.detach() - 0.5).abs().max()) > 1e-3


def test_missing_modality_gets_zero_weight_and_no_unimodal_loss() -> None:
    torch.manual_seed(0)
    method = DMS(_spec(), T=3).eval()
    x, y = _data(6, 2)
    present = _present(6)
    present["b"] = torch.tensor([True, False, True, False, True, True])
    out = method(x, present)
    assert torch.all(out.weights[~present["b"], 1] == 0)
    assert torch.allclose(out.weights[~present["b"], 0], torch.ones(2))
    assert torch.allclose(out.weights.sum(1), torch.ones(6))
    # the absent modality's (garbage) input cannot change the prediction of those samples
    x2 = dict(x)
    x2["b"] = x["b"] + 100.0 * (~present["b"]).float().unsqueeze(1)
    out2 = method(x2, present, mc_masks=None)
    rows = ~present["b"]
    torch.testing.assert_close(out.logits[rows], out2.logits[rows])
    batch = Batch(x, present, y, torch.arange(6))
    losses = method.losses(out, batch)
    assert set(losses) == {"ce", "unimodal_ce", "weight_consistency"}
    assert all(torch.isfinite(v) for v in losses.values())


def test_every_modality_missing_is_a_data_error() -> None:
    method = DMS(_spec(), T=2)
    x, _ = _data(2, 0)
    absent = {m: torch.zeros(2, dtype=torch.bool) for m in MODALITIES}
    with pytest.raises(DataError, match="every modality missing"):
        method(x, absent)


def test_weight_consistency_loss_stops_the_gradient_at_the_weights() -> None:
    torch.manual_seed(0)
    method = DMS(_spec(), scheduler="learned", T=2, detach_signals=True).train()
    x, y = _data(8, 0)
    out = method(x, _present(8))
    loss = method.losses(out, Batch(x, _present(8), y, torch.arange(8)))["weight_consistency"]
    loss.backward()
    # the scheduler's parameters only reach this loss through the weights: stop-gradient -> none
    assert all(
        p.grad is None or float(p.grad.abs().sum()) == 0 for p in method.scheduler.parameters()
    )
    assert float(method.heads["a"].projector.weight.grad.abs().sum()) > 0
    manual = (
        (
            out.weights.detach()
            * (out.extras["fused"].unsqueeze(1) - out.extras["shared"]).pow(2).sum(-1)
        )
        .sum(1)
        .mean()
    )
    assert torch.allclose(loss, 0.1 * manual)


def test_fixed_masks_make_the_forward_deterministic_and_match_the_loop() -> None:
    torch.manual_seed(0)
    method = DMS(_spec(), T=5, mc_scope="head").eval()
    x, _ = _data(4, 0)
    g = torch.Generator().manual_seed(0)
    masks = {m: method.heads[m].sample_masks(5, generator=g) for m in MODALITIES}
    first = method(x, _present(4), mc_masks=masks)
    second = method(x, _present(4), mc_masks=masks)
    assert torch.equal(first.weights, second.weights)
    # uncertainty from a loop of T passes under the same masks
    for i, m in enumerate(MODALITIES):
        probs = torch.stack(
            [
                torch.softmax(method.heads[m](x[m], (masks[m][0][t], masks[m][1][t]))[1], -1)
                for t in range(5)
            ]
        )
        expected = probs.var(0, unbiased=False).mean(-1) / 0.25
        torch.testing.assert_close(first.extras["uncertainty"][:, i], expected)


def test_heads_batched_across_modalities_equal_the_heads_one_by_one() -> None:
    """Three modalities, two of one feature size and one of another: two stacked groups."""
    torch.manual_seed(0)
    spec = MethodSpec(("x", "y", "z"), {"x": 6, "y": 4, "z": 6}, 3, hidden_dim=16)
    method = DMS(spec, T=4, mc_scope="head").eval()
    features = {m: torch.randn(5, spec.feature_dims[m]) for m in spec.modalities}
    present = {m: torch.ones(5, dtype=torch.bool) for m in spec.modalities}
    g = torch.Generator().manual_seed(3)
    masks = {m: method.heads[m].sample_masks(4, generator=g) for m in spec.modalities}
    out = method(features, present, mc_masks=masks)
    for i, m in enumerate(spec.modalities):
        z, logits = method.heads[m](features[m])
        torch.testing.assert_close(out.extras["shared"][:, i], z)
        torch.testing.assert_close(out.unimodal_logits[m], logits)
        mc = method.heads[m].mc_logits(features[m], 4, masks[m])
        probs = torch.softmax(mc, -1)
        expected = probs.var(0, unbiased=False).mean(-1) / 0.25
        torch.testing.assert_close(out.extras["uncertainty"][:, i], expected)


def test_registered_and_options_validated() -> None:
    method = build_method("dms", _spec(), {"dms": {"scheduler": "learned", "T": 3}})
    assert isinstance(method, DMS) and method.samples == 3
    with pytest.raises(ConfigError, match="scheduler"):
        build_method("dms", _spec(), {"dms": {"scheduler": "fuzzy"}})
    with pytest.raises(ConfigError, match="T=1"):
        build_method("dms", _spec(), {"dms": {"T": 1}})
    with pytest.raises(ConfigError, match="bad options"):
        build_method("dms", _spec(), {"dms": {"gamma": 1}})


def test_logged_values_after_a_training_step() -> None:
    torch.manual_seed(0)
    method = DMS(_spec(), T=2).train()
    x, _ = _data(8, 0)
    method(x, _present(8))
    logged = method.logged_values()
    assert abs(logged["dms_w_a"] + logged["dms_w_b"] - 1.0) < 1e-5
    assert {"dms_c_a", "dms_u_b", "dms_s_a"} <= set(logged)


def test_works_with_three_modalities_and_mlp_encoders() -> None:
    torch.manual_seed(0)
    spec = MethodSpec(("x", "y", "z"), {"x": 6, "y": 6, "z": 6}, 3, hidden_dim=16)
    method = DMS(spec, T=3)
    encoders = nn.ModuleDict({m: nn.Linear(5, 6) for m in spec.modalities})
    inputs = {m: torch.randn(4, 5) for m in spec.modalities}
    out = method(
        {m: encoders[m](inputs[m]) for m in spec.modalities},
        {m: torch.ones(4, dtype=torch.bool) for m in spec.modalities},
    )
    assert out.weights.shape == (4, 3)
    assert torch.allclose(out.weights.sum(1), torch.ones(4))
    out.logits.sum().backward()
    assert encoders["x"].weight.grad is not None


def test_trains_and_evaluates_through_the_project_trainer(tiny_npz: Path, tmp_path: Path) -> None:
    from robustfusion.evaluation.evaluate import evaluate_model
    from robustfusion.training.config import TrainConfig
    from robustfusion.training.run import load_run, train

    config = TrainConfig(
        data=str(tiny_npz),
        method="dms",
        method_options={"dms": {"scheduler": "rule", "T": 4}},
        epochs=3,
        batch_size=16,
        lr=0.01,
        hidden_dim=16,
        feature_dim=16,
        out=str(tmp_path / "run"),
    )
    metrics = train(config, progress=False)
    assert metrics["accuracy"] > 0.6  # 3 classes; 3 epochs on 54 training samples
    assert abs(sum(metrics["mean_weight"].values()) - 1.0) < 1e-5
    assert set(metrics["unimodal_accuracy"]) == {"a", "b"}
    model, splits, _ = load_run(tmp_path / "run")
    # the learned weights are per sample; the swaps replace them
    learned = evaluate_model(model, splits.test, splits.info)
    assert learned["mean_weight"]["a"] != 0.5
    uniform = evaluate_model(model, splits.test, splits.info, weights="uniform")
    assert uniform["mean_weight"] == {"a": 0.5, "b": 0.5}
    oracle = evaluate_model(
        model,
        splits.test,
        splits.info,
        corruption="gaussian",
        severity=20.0,
        target="b",
        weights="oracle",
    )
    assert oracle["mean_weight"] == {"a": 1.0, "b": 0.0}
    assert model.method.effective_weight_mode() == "learned"  # evaluation resets the mode


def test_uniform_twin_fuses_with_uniform_weights_and_skips_the_signals() -> None:
    torch.manual_seed(0)
    twin = DMS(_spec(), T=3, weights="uniform")
    x, y = _data(6, 0)
    present = _present(6)
    present["b"][0] = False
    out = twin(x, present)
    expected = torch.tensor([[1.0, 0.0]] + [[0.5, 0.5]] * 5)
    assert torch.equal(out.weights, expected)
    assert "uncertainty" not in out.extras
    losses = twin.losses(out, Batch(x, present, y, torch.arange(6)))
    sum(losses.values()).backward()
    assert twin.heads["a"].projector.weight.grad is not None
    with pytest.raises(ConfigError, match="weights must be learned or uniform"):
        DMS(_spec(), weights="oracle")


def test_weight_swaps_replace_the_learned_weights_for_the_next_forward(trained_rule: DMS) -> None:
    x, _ = _data(8, seed=4)
    torch.manual_seed(0)  # the MC masks
    learned = trained_rule(x, _present(8)).weights
    assert not torch.allclose(learned, torch.full_like(learned, 0.5))
    corrupted = torch.zeros(8, 2, dtype=torch.bool)
    corrupted[:4, 1] = True  # b corrupted in the first four samples
    trained_rule.set_weight_mode("oracle", corrupted)
    try:
        oracle = trained_rule(x, _present(8))
    finally:
        trained_rule.set_weight_mode("learned")
    assert torch.equal(oracle.weights[:4], torch.tensor([[1.0, 0.0]] * 4))
    assert torch.equal(oracle.weights[4:], torch.full((4, 2), 0.5))  # nothing corrupted
    # the fused logits are those of the swapped weights: z = sum_m w_m z_m
    shared = oracle.extras["shared"]
    fused = (oracle.weights.unsqueeze(-1) * shared).sum(1)
    torch.testing.assert_close(oracle.logits, trained_rule.classifier(fused))
    trained_rule.set_weight_mode("uniform")
    try:
        uniform = trained_rule(x, _present(8))
    finally:
        trained_rule.set_weight_mode("learned")
    assert torch.equal(uniform.weights, torch.full((8, 2), 0.5))
    torch.manual_seed(0)
    assert torch.equal(trained_rule(x, _present(8)).weights, learned)


def test_agreement_consistency_does_not_cancel_with_two_modalities(trained_rule: DMS) -> None:
    """With only the consistency term (a = b = 0) the cosine gives uniform weights when M = 2
    (it is symmetric); the prediction agreement does not, and favours the clean modality."""
    x, _ = _data(100, seed=6)
    x["b"] = 3.0 * torch.randn(100, 8, generator=torch.Generator().manual_seed(1))
    scheduler = trained_rule.scheduler
    scheduler.a, scheduler.b = 0.0, 0.0
    kind = trained_rule.consistency_kind
    try:
        trained_rule.consistency_kind = "cosine"
        cosine = trained_rule(x, _present(100))
        trained_rule.consistency_kind = "agreement"
        agreement = trained_rule(x, _present(100))
    finally:
        scheduler.a, scheduler.b = 1.0, 1.0
        trained_rule.consistency_kind = kind
    torch.testing.assert_close(cosine.weights, torch.full((100, 2), 0.5))
    s = agreement.extras["consistency"]
    assert float((s[:, 0] > s[:, 1]).float().mean()) > 0.75  # the clean a agrees more
    assert float(agreement.weights[:, 0].mean()) > 0.51


def test_training_noise_hits_one_present_modality_per_chosen_sample() -> None:
    method = DMS(_spec(), T=2, train_noise=3.0, train_noise_p=0.5, seed=1)
    x, y = _data(200, 0)
    present = _present(200)
    present["b"][:20] = False
    batch = Batch(x, present, y, torch.arange(200))
    assert method.prepare_batch(batch, training=False) is batch
    noisy = method.prepare_batch(batch, training=True)
    changed = torch.stack([(noisy.inputs[m] != x[m]).any(1) for m in MODALITIES], 1)
    assert not bool((changed.sum(1) > 1).any())  # at most one modality per sample
    assert 0.35 < float(changed.any(1).float().mean()) < 0.65  # about train_noise_p of them
    assert not bool(changed[:20, 1].any())  # never an absent modality
    assert bool(changed[:, 0].any()) and bool(changed[:, 1].any())
    again = method.prepare_batch(batch, training=True)
    assert all(torch.equal(again.inputs[m], noisy.inputs[m]) for m in MODALITIES)
    method.on_epoch_start(1, 5)  # a new epoch draws new noise
    later = method.prepare_batch(batch, training=True)
    assert not torch.equal(later.inputs["a"], noisy.inputs["a"])
    with pytest.raises(ConfigError, match="train_noise"):
        DMS(_spec(), train_noise=-1.0)


def _encoders(spec: MethodSpec, kind: str) -> nn.ModuleDict:
    from robustfusion.encoders import build_encoder

    shape = (8,) if kind == "mlp" else (1, 8, 8)
    return nn.ModuleDict(
        {m: build_encoder(kind, shape, out_dim=spec.feature_dims[m]) for m in spec.modalities}
    )


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_encoder_top_scope_runs_the_top_of_the_encoders_T_times(kind: str) -> None:
    from robustfusion.encoders.base import encoder_stages

    torch.manual_seed(0)
    spec = _spec(dims=16)
    method = DMS(spec, T=6, mc_scope="encoder_top").eval()
    encoders = _encoders(spec, kind).eval()
    shape = (8,) if kind == "mlp" else (1, 8, 8)
    inputs = {m: torch.randn(5, *shape) for m in MODALITIES}
    torch.manual_seed(7)
    features = method.encode(encoders, inputs)
    for m in MODALITIES:  # the features are the encoders' outputs
        torch.testing.assert_close(features[m], encoders[m](inputs[m]))
    passes = method._encoded.passes
    # the passes by hand: the trunk once, then the top on T dropped-out copies (one mask per pass)
    torch.manual_seed(7)
    for m in MODALITIES:
        stages = encoder_stages(encoders[m])
        hidden = inputs[m]
        for stage in stages[:-1]:
            hidden = stage(hidden)
        keep = torch.rand((6, 1, *hidden.shape[1:])) < 0.9
        expected = stages[-1]((hidden.unsqueeze(0) * keep / 0.9).flatten(0, 1)).view(6, 5, -1)
        torch.testing.assert_close(passes[m], expected)
        assert not torch.allclose(passes[m][0], passes[m][1])
    g = torch.Generator().manual_seed(0)
    masks = {m: method.heads[m].sample_masks(6, generator=g) for m in MODALITIES}
    out = method(features, _present(5), mc_masks=masks)
    for i, m in enumerate(MODALITIES):  # the heads' T passes run over the encoder passes
        probs = torch.softmax(method.heads[m].mc_logits(passes[m], 6, masks[m]), -1)
        expected = probs.var(0, unbiased=False).mean(-1) / 0.25
        torch.testing.assert_close(out.extras["uncertainty"][:, i], expected)
    # a forward on features that encode() did not produce cannot find its passes
    with pytest.raises(ConfigError, match="dms.encode"):
        method({m: f.clone() for m, f in features.items()}, _present(5))


def test_encoder_scope_keeps_batch_norm_statistics_and_trains_the_encoders() -> None:
    """In training the MC passes run the encoders in evaluation mode: the batch norms' running
    statistics are those of the one deterministic pass; gradients reach the encoders."""
    torch.manual_seed(0)
    spec = _spec(dims=16)
    method = DMS(spec, T=4, mc_scope="encoder").train()
    encoders = _encoders(spec, "cnn").train()
    reference = _encoders(spec, "cnn").train()
    reference.load_state_dict(encoders.state_dict())
    inputs = {m: torch.randn(6, 1, 8, 8) for m in MODALITIES}
    features = method.encode(encoders, inputs)
    for m in MODALITIES:
        reference[m](inputs[m])
        assert encoders[m].training
    for name, buffer in encoders.state_dict().items():
        torch.testing.assert_close(buffer, reference.state_dict()[name], msg=name)
    y = torch.arange(6) % 4
    out = method(features, _present(6))
    assert out.extras["uncertainty"].shape == (6, 2)
    sum(method.losses(out, Batch(inputs, _present(6), y, torch.arange(6))).values()).backward()
    assert encoders["a"].features[0][0].weight.grad is not None


def test_encoder_scopes_train_through_the_model(tiny_npz: Path) -> None:
    """MultimodalModel builds its features with method.encode (the hook this scope needs)."""
    from robustfusion.data import collate, load_dataset
    from robustfusion.model import MultimodalModel
    from robustfusion.training.build import build_encoders
    from robustfusion.training.config import TrainConfig

    torch.manual_seed(0)
    splits = load_dataset(None, data=tiny_npz, seed=0)
    config = TrainConfig(data=str(tiny_npz), hidden_dim=16, feature_dim=16)
    encoders = build_encoders(config, splits.info)
    spec = MethodSpec(("a", "b"), {"a": 16, "b": 16}, 3, hidden_dim=16)
    model = MultimodalModel(encoders, DMS(spec, T=4, mc_scope="encoder_top"))
    batch = collate(splits.train.__getitems__(list(range(16))))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(3):
        output = model(batch)
        loss = sum(model.method.losses(output, batch).values())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        out = model(batch)
    assert float(out.extras["uncertainty"].max()) > 0
    # features that did not come from method.encode: a one-line error naming the fix
    features = {m: encoders[m](batch.inputs[m]) for m in spec.modalities}
    with pytest.raises(ConfigError, match="mc_scope=classifier or head"):
        model.method(features, batch.present)


@pytest.mark.parametrize("training", [False, True])
def test_classifier_scope_runs_T_passes_of_the_classifiers_alone(training: bool) -> None:
    torch.manual_seed(0)
    spec = MethodSpec(("x", "y", "z"), {"x": 6, "y": 4, "z": 6}, 3, hidden_dim=16)
    method = DMS(spec, T=5, mc_scope="classifier").train(training)
    features = {m: torch.randn(7, spec.feature_dims[m]) for m in spec.modalities}
    present = {m: torch.ones(7, dtype=torch.bool) for m in spec.modalities}
    g = torch.Generator().manual_seed(1)
    masks = {m: method.heads[m].sample_masks(5, generator=g) for m in spec.modalities}
    out = method(features, present, mc_masks=masks)
    for i, m in enumerate(spec.modalities):
        head = method.heads[m]
        z = head.norm(head.projector(features[m]))  # no dropout before the projector
        probs = torch.stack(
            [
                torch.softmax(head.classifier(head.shared_dropout(z, masks[m][1][t])), -1)
                for t in range(5)
            ]
        )
        expected = probs.var(0, unbiased=False).mean(-1) / 0.25
        torch.testing.assert_close(out.extras["uncertainty"][:, i], expected)


@pytest.mark.parametrize("scope", ["head", "classifier"])
def test_evaluation_signals_do_not_depend_on_batching(trained_rule: DMS, scope: str) -> None:
    """Evaluation meets the same T networks in every batch (counter-based masks keyed on the seed
    and the modality): a sample's signals are the same alone, in any batch, in any order."""
    method = DMS(_spec(), scheduler="rule", mc_scope=scope)
    method.load_state_dict(trained_rule.state_dict())
    method.eval()
    x, _ = _data(12, 3)
    torch.manual_seed(0)
    whole = method(x, _present(12))
    torch.manual_seed(1)  # the global generator plays no part
    order = torch.tensor([7, 2, 11, 0, 5, 9, 1, 10, 3, 8, 4, 6])
    parts = [order[:5], order[5:6], order[6:]]
    for part in parts:
        out = method({m: x[m][part] for m in MODALITIES}, _present(len(part)))
        for key in ("uncertainty", "confidence"):
            torch.testing.assert_close(out.extras[key], whole.extras[key][part])
        torch.testing.assert_close(out.weights, whole.weights[part])
    # the masks are a function of (seed, modality): another seed meets other networks
    other = DMS(_spec(), scheduler="rule", mc_scope=scope, seed=1).eval()
    cpu, group = torch.device("cpu"), method._groups[0]
    mine = method._pass_masks(None, group, cpu)[0]  # type: ignore[arg-type]
    theirs = other._pass_masks(None, group, cpu)[0]  # type: ignore[arg-type]
    assert not torch.equal(mine[0], theirs[0])
    assert 0.8 < mine[0].float().mean().item() < 0.97  # keep probability 1 - mc_dropout = 0.9
    # training draws new masks every step
    method.train()
    heads = StackedHeads.of([method.heads[m] for m in MODALITIES])
    first, dropped = method._pass_masks(heads, group, cpu)
    assert dropped is None
    assert not torch.equal(first[0], method._pass_masks(heads, group, cpu)[0][0])


@pytest.mark.parametrize("width", [8, 32])
def test_consistency_reduction_mean_is_the_sum_over_the_shared_width(width: int) -> None:
    """``consistency_reduction=mean`` divides the squared distance by ``shared_dim`` exactly."""
    x, y = _data(8, 0)
    batch = Batch(x, _present(8), y, torch.arange(8))
    terms = {}
    for reduction in ("sum", "mean"):
        torch.manual_seed(0)
        method = DMS(_spec(), T=2, shared_dim=width, consistency_reduction=reduction).eval()
        with torch.no_grad():
            terms[reduction] = method.losses(method(x, _present(8)), batch)["weight_consistency"]
    assert float(terms["sum"]) > 0
    torch.testing.assert_close(terms["mean"], terms["sum"] / width)


def test_an_unknown_consistency_reduction_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="consistency_reduction=sum or mean"):
        DMS(_spec(), consistency_reduction="max")
