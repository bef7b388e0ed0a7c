"""PE: inverse-variance weights from probabilistic heads."""

from __future__ import annotations

import torch

from robustfusion.methods.base import MethodSpec, build_method
from robustfusion.methods.pe import inverse_variance_weights
from robustfusion.types import Batch


def test_inverse_variance_weights_hand_example() -> None:
    # mean sigma^2: a = 1, b = 3  ->  w = (1, 1/3) / (4/3) = (0.75, 0.25).
    logvars = {"a": torch.zeros(2, 2), "b": torch.log(torch.tensor([[2.0, 4.0], [2.0, 4.0]]))}
    present = {"a": torch.ones(2, dtype=torch.bool), "b": torch.tensor([True, False])}
    weights = inverse_variance_weights(logvars, present, ("a", "b"))
    torch.testing.assert_close(weights, torch.tensor([[0.75, 0.25], [1.0, 0.0]]))


def test_method_is_stochastic_in_training_only_and_trains() -> None:
    torch.manual_seed(0)
    spec = MethodSpec(
        modalities=("a", "b"), feature_dims={"a": 4, "b": 4}, num_classes=2, hidden_dim=8
    )
    method = build_method("pe", spec, {"pe": {"kl_weight": 1e-3}})
    target = torch.randint(0, 2, (64,))
    features = {"a": target[:, None].float().repeat(1, 4) * 2 - 1, "b": torch.randn(64, 4)}
    present = {m: torch.ones(64, dtype=torch.bool) for m in features}
    batch = Batch(inputs=features, present=present, target=target, index=torch.arange(64))
    method.eval()
    torch.testing.assert_close(method(features, present).logits, method(features, present).logits)
    method.train()
    assert not torch.equal(method(features, present).logits, method(features, present).logits)
    terms = method.losses(method(features, present), batch)
    assert set(terms) == {"ce", "kl"} and float(terms["kl"].detach()) > 0
    optimiser = torch.optim.Adam(method.parameters(), lr=0.02)
    for _ in range(40):
        optimiser.zero_grad()
        sum(method.losses(method(features, present), batch).values()).backward()
        optimiser.step()
    method.eval()
    out = method(features, present)
    assert (out.logits.argmax(1) == target).float().mean() > 0.95
    torch.testing.assert_close(out.weights.sum(1), torch.ones(64))


def test_fusion_receives_residual_weights() -> None:
    torch.manual_seed(0)
    spec = MethodSpec(
        modalities=("a", "b"), feature_dims={"a": 3, "b": 3}, num_classes=2, fusion="sum"
    )
    seen: list[torch.Tensor] = []
    for residual in (True, False):
        method = build_method("pe", spec, {"pe": {"residual": residual}}).eval()
        method.fusion.register_forward_hook(
            lambda mod, args, kwargs, out: seen.append(kwargs["weights"]), with_kwargs=True
        )
        present = {
            "a": torch.ones(4, dtype=torch.bool),
            "b": torch.tensor([True, True, False, False]),
        }
        out = method({"a": torch.randn(4, 3), "b": torch.randn(4, 3)}, present)
        count = torch.tensor([[2.0], [2.0], [1.0], [1.0]])
        expected = 1 + count * out.weights if residual else count * out.weights
        torch.testing.assert_close(seen[-1], expected)
