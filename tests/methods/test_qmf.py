"""QMF: energy confidence, the ranking regulariser and the per-sample history."""

from __future__ import annotations

import pytest
import torch

from robustfusion.errors import DataError
from robustfusion.methods.base import MethodSpec, build_method
from robustfusion.modules.energy import energy_confidence, energy_score, ranking_loss
from robustfusion.types import Batch


def test_energy_score_and_confidence() -> None:
    logits = torch.tensor([[0.0, 0.0], [2.0, -1.0]])
    torch.testing.assert_close(energy_score(logits), -torch.logsumexp(logits, 1))
    torch.testing.assert_close(energy_score(logits[:1], 2.0), torch.tensor([-2.0 * 0.6931472]))
    torch.testing.assert_close(energy_confidence(logits), torch.logsumexp(logits, 1) / 10)


def test_ranking_loss_hand_example() -> None:
    # Pairs (0,1) and (1,0): t = +1 / -1, margin |2 - 1| / 1 = 1.
    confidence, history, span = (
        torch.tensor([0.5, 0.2]),
        torch.tensor([2.0, 1.0]),
        torch.tensor(1.0),
    )
    # Paper form: relu(t (c_i - c_j) + margin) = relu(0.3 + 1) for both pairs.
    assert float(ranking_loss(confidence, history, span)) == pytest.approx(1.3)
    # Code form: the margin becomes a slack, relu(0.3 - 1) = 0.
    assert float(ranking_loss(confidence, history, span, margin_sign=-1.0)) == 0.0
    # Correct order with a large enough gap costs nothing; equal histories cost nothing.
    assert float(ranking_loss(torch.tensor([0.0, 2.0]), history, span)) == 0.0
    assert float(ranking_loss(confidence, torch.tensor([1.0, 1.0]), span)) == 0.0
    valid = torch.tensor([True, False])
    assert float(ranking_loss(confidence, history, span, valid)) == 0.0


def _batch(index: torch.Tensor, target: torch.Tensor) -> Batch:
    return Batch(
        inputs={},
        present={
            "a": torch.ones(len(index), dtype=torch.bool),
            "b": torch.ones(len(index), dtype=torch.bool),
        },
        target=target,
        index=index,
    )


def test_fused_logits_history_and_checkpoint() -> None:
    torch.manual_seed(0)
    spec = MethodSpec(modalities=("a", "b"), feature_dims={"a": 3, "b": 2}, num_classes=4)
    method = build_method("qmf", spec)
    features = {"a": torch.randn(6, 3), "b": torch.randn(6, 2)}
    present = {"a": torch.ones(6, dtype=torch.bool), "b": torch.tensor([True] * 3 + [False] * 3)}
    method.eval()
    out = method(features, present)
    conf = out.extras["confidence"]
    expected = (
        out.unimodal_logits["a"] * conf[:, :1]
        + out.unimodal_logits["b"] * conf[:, 1:] * present["b"][:, None]
    )
    torch.testing.assert_close(out.logits, expected)
    assert bool((out.weights[3:, 1] == 0).all())
    # Evaluation does not touch the history.
    method.losses(out, _batch(torch.arange(6), torch.zeros(6, dtype=torch.long)))
    assert float(method.history.abs().sum()) == 0.0
    method.train()
    target = torch.randint(0, 4, (6,))
    index = torch.tensor([7, 2, 9, 0, 1, 3])
    out = method(features, {"a": present["a"], "b": torch.ones(6, dtype=torch.bool)})
    terms = method.losses(out, _batch(index, target))
    assert set(terms) == {"ce", "unimodal_ce", "rank"}
    assert method.history.shape == (2, 65536)
    ce_a = torch.nn.functional.cross_entropy(out.unimodal_logits["a"], target, reduction="none")
    torch.testing.assert_close(method.history[0, index], ce_a.detach())
    assert float(method.history[0, 4]) == 0.0
    method.losses(out, _batch(index, target))
    torch.testing.assert_close(method.history[0, index], 2 * ce_a.detach())
    fresh = build_method("qmf", spec)
    fresh.load_state_dict(method.state_dict())
    torch.testing.assert_close(fresh.history, method.history)
    small = build_method("qmf", spec, {"qmf": {"num_train_samples": 5}}).train()
    with pytest.raises(DataError, match="num_train_samples"):
        small.losses(out, _batch(index, target))


def test_rank_term_orders_confidences_by_history() -> None:
    torch.manual_seed(0)
    spec = MethodSpec(modalities=("a",), feature_dims={"a": 3}, num_classes=3)
    method = build_method("qmf", spec, {"qmf": {"num_train_samples": 2}})
    method.history.copy_(torch.tensor([[5.0, 0.0]]))  # sample 0 has been hard, sample 1 easy
    method.seen.fill_(True)
    features = {"a": torch.randn(2, 3)}
    present = {"a": torch.ones(2, dtype=torch.bool)}
    optimiser = torch.optim.SGD(method.heads.parameters(), lr=0.5)
    for _ in range(50):
        optimiser.zero_grad()
        out = method(features, present)
        loss = ranking_loss(out.extras["confidence"][:, 0], method.history[0], torch.tensor(5.0))
        loss.backward()
        optimiser.step()
    conf = method(features, present).extras["confidence"][:, 0].detach()
    assert float(conf[0]) < float(conf[1])


def test_uniform_and_oracle_swaps_replace_the_energy_confidences() -> None:
    torch.manual_seed(4)
    spec = MethodSpec(
        modalities=("a", "b", "c"), feature_dims={"a": 3, "b": 3, "c": 3}, num_classes=4
    )
    method = build_method("qmf", spec).eval()
    features = {m: torch.randn(5, 3) * (i + 1) for i, m in enumerate(spec.modalities)}
    present = {m: torch.ones(5, dtype=torch.bool) for m in spec.modalities}
    learned = method(features, present)
    conf = learned.extras["confidence"].detach()
    f = torch.stack([learned.unimodal_logits[m] for m in spec.modalities], 1).detach()  # [B, M, C]
    torch.testing.assert_close(learned.logits, (conf[..., None] * f).sum(1))
    method.set_weight_mode("uniform")
    uniform = method(features, present)
    torch.testing.assert_close(uniform.weights, torch.full((5, 3), 1 / 3))
    mean_c = conf.mean(1, keepdim=True)  # every c_m replaced by the sample's mean c
    torch.testing.assert_close(uniform.logits, mean_c * f.sum(1))
    corrupted = torch.zeros(5, 3, dtype=torch.bool)
    corrupted[:, 2] = True
    method.set_weight_mode("oracle", corrupted)
    oracle = method(features, present)
    torch.testing.assert_close(oracle.weights, torch.tensor([[0.5, 0.5, 0.0]] * 5))
    total = conf.sum(1, keepdim=True)  # the clean ones share the total, c gets 0
    torch.testing.assert_close(oracle.logits, total / 2 * f[:, :2].sum(1))
    assert not torch.allclose(oracle.logits, learned.logits)


def test_uniform_twin_trains() -> None:
    torch.manual_seed(0)
    spec = MethodSpec(modalities=("a", "b"), feature_dims={"a": 3, "b": 3}, num_classes=2)
    method = build_method("qmf", spec, {"qmf": {"weights": "uniform"}})
    assert method.has_dynamic_weights and method.trained_weights == "uniform"
    target = torch.randint(0, 2, (32,))
    features = {"a": target[:, None].float().repeat(1, 3) * 2 - 1, "b": torch.randn(32, 3)}
    present = {m: torch.ones(32, dtype=torch.bool) for m in features}
    batch = Batch(inputs={}, present=present, target=target, index=torch.arange(32))
    optimiser = torch.optim.Adam(method.parameters(), lr=0.05)
    for _ in range(40):
        optimiser.zero_grad()
        sum(method.losses(method(features, present), batch).values()).backward()
        optimiser.step()
    out = method.eval()(features, present)
    assert (out.logits.argmax(1) == target).float().mean() > 0.95
    torch.testing.assert_close(out.weights, torch.full((32, 2), 0.5))
    conf = out.extras["confidence"].detach()
    f = torch.stack([out.unimodal_logits[m] for m in ("a", "b")], 1).detach()
    torch.testing.assert_close(out.logits, conf.mean(1, keepdim=True) * f.sum(1))
