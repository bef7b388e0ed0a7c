"""PDF: Mono/Holo-Confidence, Co-Belief, relative calibration and weights on hand-worked values."""

from __future__ import annotations

import math

import pytest
import torch

from robustfusion.errors import ConfigError
from robustfusion.methods.base import MethodSpec, build_method
from robustfusion.methods.pdf import (
    co_belief_weights,
    distribution_uniformity,
    holo_confidence,
    relative_calibration,
)
from robustfusion.types import Batch

# Hand-worked example: predicted true-class probabilities p_a = 0.8, p_b = 0.5.
# log(p_a p_b) = log 0.4 = -log 2.5, so Holo_a = log 0.5 / log 0.4 = log 2 / log 2.5.
HOLO_A = math.log(2) / math.log(2.5)  # 0.756471
HOLO_B = 1 - HOLO_A  # log 1.25 / log 2.5 = 0.243529
CB_A, CB_B = 0.8 + HOLO_A, 0.5 + HOLO_B  # Co-Belief = Mono + Holo: 1.556471, 0.743529
# softmax over two = sigmoid of the difference: 1 / (1 + e^-(0.3 + 0.512942)).
W_A = 0.692736
# Relative calibration with softmaxes (0.9, 0.1) and (0.6, 0.4): DU = 0.4 and 0.1, RC = (1, 1/4).
W_A_CALIBRATED = 0.797475  # 1 / (1 + e^-(1.556471 - 0.743529 / 4))


def _spec(modalities: tuple[str, ...] = ("a", "b"), dim: int = 2, classes: int = 2) -> MethodSpec:
    return MethodSpec(
        modalities=modalities, feature_dims=dict.fromkeys(modalities, dim), num_classes=classes
    )


def _ones(n: int, modalities: tuple[str, ...] = ("a", "b")) -> dict[str, torch.Tensor]:
    return {m: torch.ones(n, dtype=torch.bool) for m in modalities}


def test_holo_confidence_hand_values() -> None:
    all_present = torch.ones(1, 2, dtype=torch.bool)
    holo = holo_confidence(torch.tensor([[0.8, 0.5]]), all_present)
    torch.testing.assert_close(holo, torch.tensor([[HOLO_A, HOLO_B]]))
    # Three modalities: p = (0.8, 0.5, 0.25), product 0.1, Holo_m = log10(p_m / 0.1).
    three = holo_confidence(torch.tensor([[0.8, 0.5, 0.25]]), torch.ones(1, 3, dtype=torch.bool))
    expected = torch.tensor([[math.log10(8), math.log10(5), math.log10(2.5)]])
    torch.testing.assert_close(three, expected)
    assert float(three.sum()) == pytest.approx(2.0)  # n - 1
    # An absent modality leaves the sums: the remaining two are the two-modality example.
    partial = holo_confidence(torch.tensor([[0.8, 0.5, 0.25]]), torch.tensor([[True, True, False]]))
    torch.testing.assert_close(partial, torch.tensor([[HOLO_A, HOLO_B, 0.0]]))
    # One present modality: no other modality's loss, Holo = 0.
    alone = holo_confidence(torch.tensor([[0.8, 0.5]]), torch.tensor([[True, False]]))
    torch.testing.assert_close(alone, torch.zeros(1, 2))


def test_relative_calibration_hand_values() -> None:
    logits = {
        "a": torch.log(torch.tensor([[0.9, 0.1]])),
        "b": torch.log(torch.tensor([[0.6, 0.4]])),
    }
    du = torch.stack([distribution_uniformity(logits[m]) for m in ("a", "b")], dim=1)
    torch.testing.assert_close(du, torch.tensor([[0.4, 0.1]]))
    present = torch.ones(1, 2, dtype=torch.bool)
    torch.testing.assert_close(relative_calibration(du, present), torch.tensor([[1.0, 0.25]]))
    # The code's rule, both orders: the more certain modality keeps 1.
    torch.testing.assert_close(
        relative_calibration(torch.tensor([[0.1, 0.4]]), present), torch.tensor([[0.25, 1.0]])
    )
    # M = 3: each relative to the most certain; an absent modality does not set the reference.
    torch.testing.assert_close(
        relative_calibration(
            torch.tensor([[0.2, 0.4, 0.1, 0.9]]), torch.tensor([[True, True, True, False]])
        )[:, :3],
        torch.tensor([[0.5, 1.0, 0.25]]),
    )
    # Every softmax exactly uniform: the code's 0/0, here RC = 1.
    torch.testing.assert_close(relative_calibration(torch.zeros(1, 2), present), torch.ones(1, 2))


def test_weights_hand_values() -> None:
    present = torch.ones(1, 2, dtype=torch.bool)
    scores = torch.tensor([[CB_A, CB_B]])
    torch.testing.assert_close(
        co_belief_weights(scores, present), torch.tensor([[W_A, 1 - W_A]]), atol=1e-6, rtol=0
    )
    calibrated = scores * torch.tensor([[1.0, 0.25]])
    torch.testing.assert_close(
        co_belief_weights(calibrated, present),
        torch.tensor([[W_A_CALIBRATED, 1 - W_A_CALIBRATED]]),
        atol=1e-6,
        rtol=0,
    )
    torch.testing.assert_close(
        co_belief_weights(scores, torch.tensor([[False, True]])), torch.tensor([[0.0, 1.0]])
    )
    torch.testing.assert_close(
        co_belief_weights(scores, torch.zeros(1, 2).bool()), torch.zeros(1, 2)
    )


def _hand_set(method: torch.nn.Module) -> None:
    """Unimodal heads that output fixed logits, ConfidNets that output p_a = 0.8, p_b = 0.5."""
    with torch.no_grad():
        for m, probs, p_true in (("a", [0.9, 0.1], 0.8), ("b", [0.6, 0.4], 0.5)):
            head = method.heads.heads[m]
            head.weight.zero_()
            head.bias.copy_(torch.log(torch.tensor(probs)))
            last = method.confidnets[m].linears[2]
            last.weight.zero_()
            last.bias.fill_(math.log(p_true / (1 - p_true)))


def test_forward_reproduces_the_hand_example() -> None:
    method = build_method("pdf", _spec())
    _hand_set(method)
    features = {"a": torch.randn(3, 2), "b": torch.randn(3, 2)}
    method.train()  # no relative calibration in training (code: pdf_train)
    out = method(features, _ones(3))
    torch.testing.assert_close(out.extras["confidence"], torch.tensor([[0.8, 0.5]] * 3))
    torch.testing.assert_close(out.extras["holo"], torch.tensor([[HOLO_A, HOLO_B]] * 3))
    torch.testing.assert_close(out.extras["co_belief"], torch.tensor([[CB_A, CB_B]] * 3))
    torch.testing.assert_close(out.weights, torch.tensor([[W_A, 1 - W_A]] * 3), atol=1e-6, rtol=0)
    fused = W_A * out.unimodal_logits["a"] + (1 - W_A) * out.unimodal_logits["b"]
    torch.testing.assert_close(out.logits, fused, atol=1e-6, rtol=0)
    method.eval()  # relative calibration in evaluation (code: pdf_test)
    out = method(features, _ones(3))
    torch.testing.assert_close(out.extras["calibration"], torch.tensor([[1.0, 0.25]] * 3))
    expected = torch.tensor([[W_A_CALIBRATED, 1 - W_A_CALIBRATED]] * 3)
    torch.testing.assert_close(out.weights, expected, atol=1e-6, rtol=0)
    never = build_method("pdf", _spec(), {"pdf": {"calibration": "never"}}).eval()
    _hand_set(never)
    torch.testing.assert_close(
        never(features, _ones(3)).weights, torch.tensor([[W_A, 1 - W_A]] * 3), atol=1e-6, rtol=0
    )


def test_no_nan_when_a_confidence_is_0_or_1() -> None:
    confidence = torch.tensor([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.5]])
    present = torch.ones(5, 2, dtype=torch.bool)
    # The code's formula, log(p_other) / (log(p_self p_other) + 1e-8), is NaN on rows 1 and 2.
    code = torch.log(confidence[:, 1]) / (torch.log(confidence.prod(1)) + 1e-8)
    assert code.isnan().tolist() == [False, True, True, False, False]
    holo = holo_confidence(confidence, present)
    assert bool(torch.isfinite(holo).all())
    assert bool(((holo >= 0) & (holo <= 1)).all())
    torch.testing.assert_close(holo.sum(1), torch.ones(5))  # n - 1 = 1 per row
    torch.testing.assert_close(holo[:2], torch.full((2, 2), 0.5))  # symmetric extremes
    assert float(holo[2, 0]) > 0.99  # the certain modality gets the other's (large) loss
    weights = co_belief_weights(confidence + holo, present)
    assert bool(torch.isfinite(weights).all())
    torch.testing.assert_close(weights.sum(1), torch.ones(5))
    # Through the method: saturated sigmoids (exactly 0 and 1) and exactly uniform softmaxes.
    method = build_method("pdf", _spec()).eval()
    with torch.no_grad():
        for m, bias in (("a", 1e4), ("b", -1e4)):
            method.confidnets[m].linears[2].weight.zero_()
            method.confidnets[m].linears[2].bias.fill_(bias)
            method.heads.heads[m].weight.zero_()
            method.heads.heads[m].bias.zero_()
    out = method({"a": torch.randn(4, 2), "b": torch.randn(4, 2)}, _ones(4))
    confidence = out.extras["confidence"].detach()
    assert float(confidence[0, 0]) == 1.0 and float(confidence[0, 1]) == 0.0
    assert bool(torch.isfinite(out.weights).all()) and bool(torch.isfinite(out.logits).all())
    torch.testing.assert_close(out.extras["calibration"], torch.ones(4, 2))
    batch = Batch(
        inputs={}, present=_ones(4), target=torch.zeros(4, dtype=torch.long), index=torch.arange(4)
    )
    assert all(bool(torch.isfinite(t)) for t in method.losses(out, batch).values())


def test_absent_modality_gets_weight_zero() -> None:
    torch.manual_seed(0)
    spec = _spec(("a", "b", "c"), dim=3, classes=4)
    method = build_method("pdf", spec)
    features = {m: torch.randn(6, 3) for m in spec.modalities}
    present = _ones(6, spec.modalities)
    present["b"] = torch.tensor([True, True, True, False, False, False])
    present["c"] = torch.tensor([True, False, True, False, True, False])
    for mode in (True, False):
        out = method.train(mode)(features, present)
        mask = torch.stack([present[m] for m in spec.modalities], 1)
        assert bool((out.weights[~mask] == 0).all())
        torch.testing.assert_close(out.weights.sum(1), torch.ones(6))
        only_a = ~present["b"] & ~present["c"]
        torch.testing.assert_close(out.weights[only_a], torch.tensor([[1.0, 0.0, 0.0]] * 2))
        torch.testing.assert_close(out.logits[only_a], out.unimodal_logits["a"][only_a])
    batch = Batch(
        inputs={}, present=present, target=torch.randint(0, 4, (6,)), index=torch.arange(6)
    )
    method.train()
    out = method(features, present)
    terms = method.losses(out, batch)
    # The absent samples of b leave its unimodal CE and TCP terms.
    seen = present["b"]
    target = batch.target
    ce_b = torch.nn.functional.cross_entropy(out.unimodal_logits["b"][seen], target[seen])
    ce_a = torch.nn.functional.cross_entropy(out.unimodal_logits["a"], target)
    ce_c = torch.nn.functional.cross_entropy(
        out.unimodal_logits["c"][present["c"]], target[present["c"]]
    )
    torch.testing.assert_close(terms["unimodal_ce"], ce_a + ce_b + ce_c)


def test_training_step_and_what_gets_gradients() -> None:
    torch.manual_seed(0)
    method = build_method("pdf", _spec(dim=3, classes=2))
    target = torch.randint(0, 2, (64,))
    x_a = (target[:, None].float() * 2 - 1).repeat(1, 3) + 0.3 * torch.randn(64, 3)
    features = {"a": x_a.requires_grad_(), "b": torch.randn(64, 3).requires_grad_()}
    present = _ones(64)
    batch = Batch(inputs={}, present=present, target=target, index=torch.arange(64))
    out = method.train()(features, present)
    terms = method.losses(out, batch)
    assert set(terms) == {"ce", "unimodal_ce", "tcp", "confidnet_decay"}
    # The TCP loss trains the ConfidNets only: features detached, unimodal heads untouched.
    terms["tcp"].backward()
    assert features["a"].grad is None
    assert method.heads.heads["a"].weight.grad is None
    assert method.confidnets["a"].linears[0].weight.grad is not None
    # The fused CE does not reach the ConfidNets (the weights are detached).
    method.zero_grad()
    method(features, present).logits.sum().backward()
    assert all(p.grad is None for p in method.confidnets.parameters())
    # The decay term is coupled L2: gradient decay * W on the first layer of each ConfidNet.
    method.zero_grad()
    method.losses(out, batch)["confidnet_decay"].backward()
    for m in ("a", "b"):
        layers = method.confidnets[m].linears
        torch.testing.assert_close(layers[0].weight.grad, layers[0].weight.detach())
        assert layers[1].weight.grad is None
    # A short training run learns the informative modality and gives it more weight.
    optimiser = torch.optim.Adam(method.parameters(), lr=0.05)
    for _ in range(60):
        optimiser.zero_grad()
        sum(method.losses(method(features, present), batch).values()).backward()
        optimiser.step()
    out = method.eval()(features, present)
    assert float((out.logits.argmax(1) == target).float().mean()) > 0.95
    assert float(out.weights[:, 0].mean()) > 0.5
    eval_terms = method.losses(out, batch)
    assert "confidnet_decay" not in eval_terms
    assert all(bool(torch.isfinite(t)) for t in eval_terms.values())


def test_decay_layers_code_and_all() -> None:
    method = build_method("pdf", _spec(), {"pdf": {"confidnet_decay_layers": "code"}})
    a, b = method.confidnets["a"].linears, method.confidnets["b"].linears
    assert method.decayed_weights() == [a[0].weight, b[1].weight]
    every = build_method("pdf", _spec(), {"pdf": {"confidnet_decay_layers": "all"}})
    assert len(every.decayed_weights()) == 6
    off = build_method("pdf", _spec(), {"pdf": {"confidnet_decay": 0.0}}).train()
    out = off({"a": torch.randn(2, 2), "b": torch.randn(2, 2)}, _ones(2))
    batch = Batch(
        inputs={}, present=_ones(2), target=torch.zeros(2, dtype=torch.long), index=torch.arange(2)
    )
    assert "confidnet_decay" not in off.losses(out, batch)


def test_swaps_and_uniform_twin() -> None:
    torch.manual_seed(1)
    spec = _spec(("a", "b", "c"), dim=3, classes=4)
    method = build_method("pdf", spec).eval()
    assert method.has_dynamic_weights
    features = {m: torch.randn(5, 3) * (i + 1) for i, m in enumerate(spec.modalities)}
    present = _ones(5, spec.modalities)
    learned = method(features, present)
    f = torch.stack([learned.unimodal_logits[m] for m in spec.modalities], 1).detach()
    torch.testing.assert_close(learned.logits, (learned.weights[..., None] * f).sum(1))
    method.set_weight_mode("uniform")
    uniform = method(features, present)
    torch.testing.assert_close(uniform.weights, torch.full((5, 3), 1 / 3))
    torch.testing.assert_close(uniform.logits, f.mean(1))
    corrupted = torch.zeros(5, 3, dtype=torch.bool)
    corrupted[:, 2] = True
    method.set_weight_mode("oracle", corrupted)
    oracle = method(features, present)
    torch.testing.assert_close(oracle.weights, torch.tensor([[0.5, 0.5, 0.0]] * 5))
    torch.testing.assert_close(oracle.logits, f[:, :2].mean(1))
    method.set_weight_mode("learned")
    torch.testing.assert_close(method(features, present).weights, learned.weights)
    twin = build_method("pdf", spec, {"pdf": {"weights": "uniform"}}).train()
    assert twin.trained_weights == "uniform"
    out = twin(features, present)
    torch.testing.assert_close(out.weights, torch.full((5, 3), 1 / 3))
    batch = Batch(
        inputs={}, present=present, target=torch.zeros(5, dtype=torch.long), index=torch.arange(5)
    )
    assert "tcp" in twin.losses(out, batch)  # the ConfidNets still train


def test_checkpoint_round_trip() -> None:
    torch.manual_seed(2)
    method = build_method("pdf", _spec()).eval()
    features = {"a": torch.randn(4, 2), "b": torch.randn(4, 2)}
    fresh = build_method("pdf", _spec()).eval()
    fresh.load_state_dict(method.state_dict())
    torch.testing.assert_close(fresh(features, _ones(4)).logits, method(features, _ones(4)).logits)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"weights": "oracle"}, "weights must be learned or uniform"),
        ({"holo_eps": 0.0}, "holo_eps"),
        ({"calibration": "test"}, "calibration must be one of"),
        ({"confidnet_decay_layers": "second"}, "confidnet_decay_layers must be one of"),
        ({"confidnet_activation": "tanh"}, "confidnet_activation"),
        ({"confidnet_decay": -1.0}, "confidnet_decay"),
    ],
)
def test_bad_options(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_method("pdf", _spec(), {"pdf": options})


def test_code_decay_layers_refuse_three_modalities() -> None:
    with pytest.raises(ConfigError, match="use first or all"):
        build_method("pdf", _spec(("a", "b", "c")), {"pdf": {"confidnet_decay_layers": "code"}})
