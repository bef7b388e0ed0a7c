"""TMC: the Dempster-Shafer combination against a hand-worked example, the loss, the method."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Dirichlet, kl_divergence

from robustfusion.errors import ConfigError
from robustfusion.methods.base import MethodSpec, build_method
from robustfusion.methods.tmc import rescale_opinions
from robustfusion.modules.evidential import (
    combine,
    combine_two,
    dirichlet_kl_to_uniform,
    evidential_loss,
    opinion,
)
from robustfusion.types import Batch


def test_combination_of_two_opinions_matches_hand_worked_example() -> None:
    # alpha1 = [3, 1]: S = 4, b = [1/2, 0], u = 1/2.  alpha2 = [2, 2]: b = [1/4, 1/4], u = 1/2.
    # C = b1_0 b2_1 + b1_1 b2_0 = 1/8;  b_0 = (1/8 + 1/4 + 1/8) / (7/8) = 4/7;
    # b_1 = (0 + 0 + 1/8) / (7/8) = 1/7;  u = (1/4) / (7/8) = 2/7;  S = 2 / u = 7;  alpha = [5, 2].
    alpha = combine_two(torch.tensor([[3.0, 1.0]]), torch.tensor([[2.0, 2.0]]))
    torch.testing.assert_close(alpha, torch.tensor([[5.0, 2.0]]))
    belief, u = opinion(alpha)
    torch.testing.assert_close(belief, torch.tensor([[4 / 7, 1 / 7]]))
    torch.testing.assert_close(u, torch.tensor([[2 / 7]]))


def test_vacuous_opinion_is_the_identity_and_combination_is_symmetric() -> None:
    torch.manual_seed(0)
    a, b = torch.rand(4, 5) * 5 + 1, torch.rand(4, 5) * 5 + 1
    torch.testing.assert_close(combine_two(a, torch.ones_like(a)), a)
    torch.testing.assert_close(combine_two(a, b), combine_two(b, a))
    torch.testing.assert_close(combine([a, b, torch.ones_like(a)]), combine_two(a, b))


def test_loss_digamma_term_and_kl_match_closed_forms() -> None:
    alpha = torch.tensor([[5.0, 2.0]])
    # psi(S) - psi(alpha_y) = psi(7) - psi(5) = 1/5 + 1/6.
    torch.testing.assert_close(
        evidential_loss(alpha, torch.tensor([0]), 0.0), torch.tensor([1 / 5 + 1 / 6])
    )
    alpha = torch.tensor([[4.0, 1.5, 2.0], [1.0, 1.0, 1.0]])
    expected = kl_divergence(Dirichlet(alpha), Dirichlet(torch.ones(3)))
    torch.testing.assert_close(dirichlet_kl_to_uniform(alpha), expected)
    # The KL acts on the evidence of the wrong classes only: alpha~ = [1, 1.5, 2] for y = 0.
    with_kl = evidential_loss(alpha[:1], torch.tensor([0]), 0.5)
    ace = evidential_loss(alpha[:1], torch.tensor([0]), 0.0)
    kl = kl_divergence(Dirichlet(torch.tensor([1.0, 1.5, 2.0])), Dirichlet(torch.ones(3)))
    torch.testing.assert_close(with_kl, ace + 0.5 * kl)


def _spec() -> MethodSpec:
    return MethodSpec(
        modalities=("a", "b", "c"), feature_dims={"a": 4, "b": 3, "c": 2}, num_classes=3
    )


def test_method_outputs_absent_views_and_annealing() -> None:
    torch.manual_seed(0)
    method = build_method("tmc", _spec(), {"tmc": {"annealing_epochs": 10}})
    features = {"a": torch.randn(5, 4), "b": torch.randn(5, 3), "c": torch.randn(5, 2)}
    present = {m: torch.ones(5, dtype=torch.bool) for m in features}
    present["c"] = torch.tensor([True, False, True, False, True])
    out = method(features, present)
    torch.testing.assert_close(out.weights.sum(1), torch.ones(5))
    assert bool((out.weights[~present["c"], 2] == 0).all())
    torch.testing.assert_close(out.logits.exp().sum(1), torch.ones(5))
    # An absent view changes nothing: same as combining only the two present opinions.
    two = combine([out.extras["alpha/a"], out.extras["alpha/b"]])
    torch.testing.assert_close(out.extras["alpha"][1], two[1])
    method.on_epoch_start(0, 100)
    assert float(method.kl_weight) == pytest.approx(0.1)
    method.on_epoch_start(40, 100)
    assert float(method.kl_weight) == 1.0
    with pytest.raises(ConfigError):
        build_method("tmc", _spec(), {"tmc": {"evidence": "sigmoid"}})


def test_method_learns_a_separable_task() -> None:
    torch.manual_seed(0)
    method = build_method("tmc", _spec())
    target = torch.randint(0, 3, (64,))
    centres = torch.randn(3, 4) * 3
    features = {
        "a": centres[target] + torch.randn(64, 4) * 0.3,
        "b": torch.randn(64, 3),
        "c": torch.randn(64, 2),
    }
    present = {m: torch.ones(64, dtype=torch.bool) for m in features}
    batch = Batch(inputs=features, present=present, target=target, index=torch.arange(64))
    optimiser = torch.optim.Adam(method.parameters(), lr=0.05)
    method.on_epoch_start(0, 10)
    for _ in range(60):
        optimiser.zero_grad()
        loss = sum(method.losses(method(features, present), batch).values())
        loss.backward()
        optimiser.step()
    out = method(features, present)
    assert (out.logits.argmax(1) == target).float().mean() > 0.95
    # The informative view is the most certain one, so it gets the largest weight.
    assert bool((out.weights.argmax(1) == 0).float().mean() > 0.9)


def test_rescaled_opinions_keep_belief_shapes_and_learned_is_the_identity() -> None:
    torch.manual_seed(5)
    alphas = [torch.rand(4, 3) * 6 + 1, torch.rand(4, 3) * 2 + 1]
    conf = torch.cat([1 - opinion(a)[1] for a in alphas], 1)
    learned = conf / conf.sum(1, keepdim=True)
    for a, same in zip(alphas, rescale_opinions(alphas, conf, learned), strict=True):
        torch.testing.assert_close(same, a)
    uniform = rescale_opinions(alphas, conf, torch.full((4, 2), 0.5))
    mean_u = 1 - conf.mean(1, keepdim=True)
    for a, new in zip(alphas, uniform, strict=True):
        torch.testing.assert_close(opinion(new)[1], mean_u)  # every view at the mean uncertainty
        torch.testing.assert_close(
            (new - 1) / (new - 1).sum(1, keepdim=True), (a - 1) / (a - 1).sum(1, keepdim=True)
        )


def test_uniform_and_oracle_swaps() -> None:
    torch.manual_seed(6)
    method = build_method("tmc", _spec()).eval()
    features = {"a": torch.randn(6, 4) * 3, "b": torch.randn(6, 3), "c": torch.randn(6, 2)}
    present = {m: torch.ones(6, dtype=torch.bool) for m in features}
    learned = method(features, present)
    conf = 1 - torch.cat([opinion(learned.extras[f"alpha/{m}"])[1] for m in "abc"], 1)
    torch.testing.assert_close(learned.weights, conf / conf.sum(1, keepdim=True))
    method.set_weight_mode("uniform")
    uniform = method(features, present)
    torch.testing.assert_close(uniform.weights, torch.full((6, 3), 1 / 3))
    corrupted = torch.zeros(6, 3, dtype=torch.bool)
    corrupted[:, 0] = True
    method.set_weight_mode("oracle", corrupted)
    oracle = method(features, present)
    torch.testing.assert_close(oracle.weights, torch.tensor([[0.0, 0.5, 0.5]] * 6))
    # View a is vacuous: the result is the combination of b and c alone, each lifted to the
    # sample's highest confidence (never above it).
    lifted = rescale_opinions(
        [learned.extras[f"alpha/{m}"] for m in "abc"], conf, torch.tensor([[0.0, 0.5, 0.5]] * 6)
    )
    torch.testing.assert_close(lifted[0], torch.ones(6, 3))
    torch.testing.assert_close(oracle.extras["alpha"], combine(lifted[1:]))
    ceiling = conf.max(1).values
    for new in lifted[1:]:
        assert bool((1 - opinion(new)[1].squeeze(1) <= ceiling + 1e-5).all())
    assert not torch.allclose(oracle.logits, learned.logits)
    # The per-view outputs (and losses) keep each view's own opinion.
    torch.testing.assert_close(oracle.unimodal_logits["a"], learned.unimodal_logits["a"])


def test_uniform_twin_trains() -> None:
    torch.manual_seed(0)
    method = build_method("tmc", _spec(), {"tmc": {"weights": "uniform"}})
    assert method.has_dynamic_weights and method.trained_weights == "uniform"
    target = torch.randint(0, 3, (64,))
    centres = torch.randn(3, 4) * 3
    features = {
        "a": centres[target] + torch.randn(64, 4) * 0.3,
        "b": torch.randn(64, 3),
        "c": torch.randn(64, 2),
    }
    present = {m: torch.ones(64, dtype=torch.bool) for m in features}
    batch = Batch(inputs=features, present=present, target=target, index=torch.arange(64))
    optimiser = torch.optim.Adam(method.parameters(), lr=0.05)
    method.on_epoch_start(0, 10)
    for _ in range(60):
        optimiser.zero_grad()
        sum(method.losses(method(features, present), batch).values()).backward()
        optimiser.step()
    out = method(features, present)
    assert (out.logits.argmax(1) == target).float().mean() > 0.95
    torch.testing.assert_close(out.weights, torch.full((64, 3), 1 / 3))
