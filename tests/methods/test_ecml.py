"""ECML: the aggregation and the loss against hand-worked values and the authors' code."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robustfusion.errors import ConfigError
from robustfusion.methods.base import MethodSpec, build_method
from robustfusion.methods.ecml import (
    aggregate_evidence,
    aggregation_coefficients,
    conflict_degree,
    evidence_shares,
    reweighted_evidence,
)
from robustfusion.modules.evidential import opinion
from robustfusion.types import Batch

# Three views, two classes: e1 = [2, 0], e2 = [0, 4], e3 = [4, 2].
EVIDENCE = torch.tensor([[[2.0, 0.0], [0.0, 4.0], [4.0, 2.0]]])
ALL = torch.ones(1, 3, dtype=torch.bool)


def test_mean_and_running_aggregation_match_hand_worked_values() -> None:
    mean = aggregation_coefficients(ALL, "mean")
    running = aggregation_coefficients(ALL, "running")
    torch.testing.assert_close(mean, torch.full((1, 3), 1 / 3))
    torch.testing.assert_close(running, torch.tensor([[0.25, 0.25, 0.5]]))
    # mean: (e1 + e2 + e3) / 3 = [2, 2];  running: ((e1 + e2) / 2 + e3) / 2 = [2.5, 2].
    torch.testing.assert_close(aggregate_evidence(EVIDENCE, mean), torch.tensor([[2.0, 2.0]]))
    torch.testing.assert_close(aggregate_evidence(EVIDENCE, running), torch.tensor([[2.5, 2.0]]))
    # Shares of the aggregated evidence: E = [2, 4, 6]; mean: [2, 4, 6] / 3 / 4 = [1/6, 1/3, 1/2];
    # running: [0.5, 1, 3] / 4.5 = [1/9, 2/9, 2/3].
    torch.testing.assert_close(evidence_shares(EVIDENCE, mean), torch.tensor([[1 / 6, 1 / 3, 0.5]]))
    torch.testing.assert_close(
        evidence_shares(EVIDENCE, running), torch.tensor([[1 / 9, 2 / 9, 2 / 3]])
    )


def test_running_average_depends_on_the_view_order_and_the_mean_does_not() -> None:
    reverse = EVIDENCE.flip(1)  # e3, e2, e1: ((e3 + e2) / 2 + e1) / 2 = [2, 1.5]
    running = aggregation_coefficients(ALL, "running")
    torch.testing.assert_close(aggregate_evidence(reverse, running), torch.tensor([[2.0, 1.5]]))
    mean = aggregation_coefficients(ALL, "mean")
    torch.testing.assert_close(
        aggregate_evidence(reverse, mean), aggregate_evidence(EVIDENCE, mean)
    )
    # Six views: the authors' running average weighs them 1/32, 1/32, 1/16, 1/8, 1/4, 1/2.
    six = aggregation_coefficients(torch.ones(1, 6, dtype=torch.bool), "running")
    torch.testing.assert_close(six, torch.tensor([[1 / 32, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2]]))


def test_two_views_running_equals_mean_equals_averaging_belief_fusion() -> None:
    torch.manual_seed(0)
    e = torch.rand(5, 2, 4) * 6
    both = torch.ones(5, 2, dtype=torch.bool)
    mean = aggregate_evidence(e, aggregation_coefficients(both, "mean"))
    running = aggregate_evidence(e, aggregation_coefficients(both, "running"))
    torch.testing.assert_close(running, mean)
    # The paper's pairwise rule (appendix Eq. 2-3) on the two opinions gives the mean evidence
    # (appendix Proposition 1): b = (b1 u2 + b2 u1) / (u1 + u2), u = 2 u1 u2 / (u1 + u2).
    b1, u1 = opinion(e[:, 0] + 1)
    b2, u2 = opinion(e[:, 1] + 1)
    belief = (b1 * u2 + b2 * u1) / (u1 + u2)
    uncertainty = 2 * u1 * u2 / (u1 + u2)
    fused_b, fused_u = opinion(mean + 1)
    torch.testing.assert_close(fused_b, belief)
    torch.testing.assert_close(fused_u, uncertainty)


def test_absent_views_are_left_out_of_both_aggregations() -> None:
    present = torch.tensor([[True, False, True]])
    torch.testing.assert_close(
        aggregation_coefficients(present, "mean"), torch.tensor([[0.5, 0, 0.5]])
    )
    torch.testing.assert_close(
        aggregation_coefficients(present, "running"), torch.tensor([[0.5, 0, 0.5]])
    )
    first_absent = torch.tensor([[False, True, True, True]])
    torch.testing.assert_close(
        aggregation_coefficients(first_absent, "running"), torch.tensor([[0, 0.25, 0.25, 0.5]])
    )


def test_conflict_degree_matches_hand_worked_values() -> None:
    # alpha1 = [3, 1]: p = [3/4, 1/4], u = 1/2.  alpha2 = [1, 3]: p = [1/4, 3/4], u = 1/2.
    # cp = 1/2, cc = 1/4: two ordered pairs, / (V - 1) = 1  ->  2 * 1/8 = 1/4.
    two = torch.tensor([[[3.0, 1.0], [1.0, 3.0]]])
    torch.testing.assert_close(
        conflict_degree(two, torch.ones(1, 2, dtype=torch.bool)), torch.tensor([0.25])
    )
    # alpha3 = [2, 2]: p = [1/2, 1/2], u = 1/2; cp(1,3) = cp(2,3) = 1/4 (each pair 1/16).
    # Ordered pairs: 2 * (1/8 + 1/16 + 1/16) = 1/2, / (V - 1) = 2  ->  1/4.
    three = torch.tensor([[[3.0, 1.0], [1.0, 3.0], [2.0, 2.0]]])
    torch.testing.assert_close(conflict_degree(three, ALL), torch.tensor([0.25]))
    # The third view absent: the two-view value; one view only: 0.
    torch.testing.assert_close(
        conflict_degree(three, torch.tensor([[True, True, False]])), torch.tensor([0.25])
    )
    torch.testing.assert_close(
        conflict_degree(three, torch.tensor([[True, False, False]])), torch.tensor([0.0])
    )


def _authors_loss(evidences, evidence_a, target, epoch, num_classes, annealing, gamma):  # noqa: ANN001, ANN202
    """The authors' ``loss_function.get_loss`` (github.com/jiajunsi/RCML), transcribed."""

    def kl(alpha):  # noqa: ANN001, ANN202
        ones = torch.ones([1, num_classes])
        s = alpha.sum(1, keepdim=True)
        first = (
            torch.lgamma(s)
            - torch.lgamma(alpha).sum(1, keepdim=True)
            + torch.lgamma(ones).sum(1, keepdim=True)
            - torch.lgamma(ones.sum(1, keepdim=True))
        )
        second = ((alpha - ones) * (torch.digamma(alpha) - torch.digamma(s))).sum(1, keepdim=True)
        return first + second

    def edl(alpha, y):  # noqa: ANN001, ANN202
        s = alpha.sum(1, keepdim=True)
        a = (y * (torch.digamma(s) - torch.digamma(alpha))).sum(1, keepdim=True)
        coef = min(1.0, epoch / annealing)
        kl_alpha = (alpha - 1) * (1 - y) + 1
        return (a + coef * kl(kl_alpha)).mean()

    def dc(evs):  # noqa: ANN001, ANN202
        v_num = len(evs)
        b, k = evs[0].shape
        p = torch.zeros(v_num, b, k)
        u = torch.zeros(v_num, b)
        for v in range(v_num):
            alpha = evs[v] + 1
            s = alpha.sum(1, keepdim=True)
            p[v] = alpha / s
            u[v] = (k / s).squeeze()
        total = 0
        for i in range(v_num):
            pd = (torch.abs(p - p[i]) / 2).sum(2) / (v_num - 1)
            cc = (1 - u[i]) * (1 - u)
            total = total + (pd * cc).sum(0)
        return total.mean()

    y = F.one_hot(target, num_classes)
    loss = edl(evidence_a + 1, y)
    for v in range(len(evidences)):
        loss = loss + edl(evidences[v] + 1, y)
    loss = loss / (len(evidences) + 1)
    return loss + gamma * dc(evidences)


def _spec(views: int = 3, classes: int = 4, dim: int | None = None) -> MethodSpec:
    names = tuple("abcdef"[:views])
    dims = {m: dim or classes for m in names}
    return MethodSpec(modalities=names, feature_dims=dims, num_classes=classes)


def _identity_relu(method: torch.nn.Module) -> None:
    """Heads that pass their input through, so that ``relu`` evidence equals the features."""
    with torch.no_grad():
        for head in method.heads.values():
            head.weight.copy_(torch.eye(head.weight.shape[0]))
            head.bias.zero_()


def test_loss_matches_hand_worked_value() -> None:
    # alpha1 = [3, 1], alpha2 = [1, 3], target 0; mean: e_A = [1, 1], alpha_A = [2, 2].
    # ace: A = psi(4) - psi(2) = 5/6; view 1 psi(4) - psi(3) = 1/3; view 2 psi(4) - psi(1) = 11/6;
    # (5/6 + 2/6 + 11/6) / (V + 1) = 1;  conflict 1/4 (above): total 1.25 with gamma = 1.
    method = build_method("ecml", _spec(2, 2), {"ecml": {"evidence": "relu"}})
    _identity_relu(method)
    method.kl_weight.fill_(0.0)
    features = {"a": torch.tensor([[2.0, 0.0]]), "b": torch.tensor([[0.0, 2.0]])}
    present = {m: torch.ones(1, dtype=torch.bool) for m in features}
    out = method(features, present)
    torch.testing.assert_close(out.extras["alpha"], torch.tensor([[2.0, 2.0]]))
    batch = Batch(inputs=features, present=present, target=torch.tensor([0]), index=torch.arange(1))
    terms = method.losses(out, batch)
    torch.testing.assert_close(terms["evidential"], torch.tensor(1.0))
    torch.testing.assert_close(terms["conflict"], torch.tensor(0.25))


@pytest.mark.parametrize("epoch", [0, 9, 60])
def test_loss_equals_the_authors_code_with_running_aggregation(epoch: int) -> None:
    torch.manual_seed(epoch)
    method = build_method("ecml", _spec(4, 5), {"ecml": {"aggregation": "running", "gamma": 0.7}})
    method.on_epoch_start(epoch, 100)
    features = {m: torch.randn(8, 5) for m in "abcd"}
    present = {m: torch.ones(8, dtype=torch.bool) for m in features}
    target = torch.randint(0, 5, (8,))
    out = method(features, present)
    evidences = [out.extras[f"alpha/{m}"] - 1 for m in "abcd"]
    evidence_a = evidences[0]
    for e in evidences[1:]:  # the authors' model.py
        evidence_a = (e + evidence_a) / 2
    torch.testing.assert_close(out.extras["alpha"] - 1, evidence_a)
    batch = Batch(inputs=features, present=present, target=target, index=torch.arange(8))
    ours = sum(method.losses(out, batch).values())
    theirs = _authors_loss(evidences, evidence_a, target, epoch + 1, 5, 50, 0.7)
    torch.testing.assert_close(ours, theirs)


def test_method_weights_absent_views_and_options() -> None:
    torch.manual_seed(1)
    method = build_method("ecml", _spec())
    features = {m: torch.randn(5, 4) for m in "abc"}
    present = {m: torch.ones(5, dtype=torch.bool) for m in features}
    present["c"] = torch.tensor([True, False, True, False, True])
    out = method(features, present)
    torch.testing.assert_close(out.weights.sum(1), torch.ones(5))
    assert bool((out.weights[~present["c"], 2] == 0).all())
    torch.testing.assert_close(out.logits.exp().sum(1), torch.ones(5))
    # An absent view changes nothing: the mean of the two present views' evidence.
    two = (out.extras["alpha/a"] + out.extras["alpha/b"]) / 2
    torch.testing.assert_close(out.extras["alpha"][1], two[1])
    method.on_epoch_start(0, 100)
    assert float(method.kl_weight) == pytest.approx(0.02)
    for bad in ({"aggregation": "median"}, {"evidence": "sigmoid"}, {"gamma": -1.0},
                {"annealing_epochs": 0}, {"weights": "oracle"}):  # fmt: skip
        with pytest.raises(ConfigError):
            build_method("ecml", _spec(), {"ecml": bad})


def test_swaps_learned_is_identity_uniform_and_oracle() -> None:
    torch.manual_seed(2)
    method = build_method("ecml", _spec()).eval()
    features = {"a": torch.randn(6, 4) * 3, "b": torch.randn(6, 4), "c": torch.randn(6, 4)}
    present = {m: torch.ones(6, dtype=torch.bool) for m in features}
    learned = method(features, present)
    evidence = torch.stack([learned.extras[f"alpha/{m}"] - 1 for m in "abc"], 1)
    coefficients = aggregation_coefficients(torch.ones(6, 3, dtype=torch.bool))
    torch.testing.assert_close(
        reweighted_evidence(evidence, coefficients, learned.weights),
        learned.extras["alpha"] - 1,
    )
    method.set_weight_mode("uniform")
    uniform = method(features, present)
    torch.testing.assert_close(uniform.weights, torch.full((6, 3), 1 / 3))
    corrupted = torch.zeros(6, 3, dtype=torch.bool)
    corrupted[:, 0] = True
    method.set_weight_mode("oracle", corrupted)
    oracle = method(features, present)
    torch.testing.assert_close(oracle.weights, torch.tensor([[0.0, 0.5, 0.5]] * 6))
    # View a no longer moves the result; the total evidence is kept.
    total = learned.extras["alpha"].sum(1) - 4
    torch.testing.assert_close(oracle.extras["alpha"].sum(1) - 4, total)
    shares = evidence_shares(oracle.extras["alpha"].unsqueeze(1) - 1, torch.ones(6, 1))
    torch.testing.assert_close(shares, torch.ones(6, 1))
    # The uniform twin trains with the uniform shares.
    twin = build_method("ecml", _spec(), {"ecml": {"weights": "uniform"}})
    twin.load_state_dict(method.state_dict())
    torch.testing.assert_close(twin(features, present).extras["alpha"], uniform.extras["alpha"])


def test_method_learns_a_separable_task() -> None:
    torch.manual_seed(0)
    method = build_method("ecml", _spec(3, 3, dim=4))
    target = torch.randint(0, 3, (64,))
    centres = torch.randn(3, 4) * 3
    features = {"a": centres[target] + torch.randn(64, 4) * 0.3}
    features.update({m: torch.randn(64, 4) for m in "bc"})
    present = {m: torch.ones(64, dtype=torch.bool) for m in features}
    batch = Batch(inputs=features, present=present, target=target, index=torch.arange(64))
    optimiser = torch.optim.Adam(method.parameters(), lr=0.05)
    method.on_epoch_start(0, 10)
    for _ in range(80):
        optimiser.zero_grad()
        loss = sum(method.losses(method(features, present), batch).values())
        loss.backward()
        optimiser.step()
    out = method(features, present)
    assert (out.logits.argmax(1) == target).float().mean() > 0.95
    # The informative view brings most of the evidence.
    assert bool((out.weights.argmax(1) == 0).float().mean() > 0.9)
