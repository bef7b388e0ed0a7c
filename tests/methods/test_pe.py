"""PE: inverse-variance weights from probabilistic heads."""

from __future__ import annotations

import copy

import pytest
import torch

from robustfusion.errors import ConfigError
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


def _spec(fusion: str = "concat") -> MethodSpec:
    return MethodSpec(
        modalities=("a", "b"), feature_dims={"a": 4, "b": 4}, num_classes=2, fusion=fusion
    )


def test_heads_use_batchnorm_by_default_and_layernorm_as_an_option() -> None:
    bn = build_method("pe", _spec())
    ln = build_method("pe", _spec(), {"pe": {"norm": "layer"}})
    assert isinstance(bn.heads["a"].logvar[1], torch.nn.BatchNorm1d)
    assert isinstance(ln.heads["a"].logvar[1], torch.nn.LayerNorm)
    with pytest.raises(ConfigError):
        build_method("pe", _spec(), {"pe": {"norm": "group"}})


@pytest.mark.parametrize(("norm", "separates"), [("batch", True), ("layer", False)])
def test_only_batchnorm_lets_sigma_carry_a_per_sample_noise_level(
    norm: str, separates: bool
) -> None:
    """Noisy samples (a larger input level along the direction the logvar map reads) get a
    larger sigma, hence a lower weight, with BatchNorm; LayerNorm normalises that level away."""
    torch.manual_seed(0)
    method = build_method("pe", _spec(), {"pe": {"norm": norm}}).train()
    for m in ("a", "b"):
        with torch.no_grad():
            method.heads[m].logvar[0].weight.fill_(0.25)  # every logvar unit reads mean(x)
            method.heads[m].logvar[0].bias.zero_()
    level = torch.tensor([0.0] * 8 + [3.0] * 8)  # the last 8 samples of a are noisy
    features = {"a": torch.randn(16, 4) * 0.1 + level[:, None], "b": torch.randn(16, 4) * 0.1}
    present = {m: torch.ones(16, dtype=torch.bool) for m in features}
    weights = method(features, present).weights.detach()
    gap = float(weights[:8, 0].mean() - weights[8:, 0].mean())
    if separates:
        assert gap > 0.2
    else:
        assert abs(gap) < 1e-3


def test_absent_samples_stay_out_of_the_batch_statistics() -> None:
    torch.manual_seed(1)
    method = build_method("pe", _spec()).train()
    features = {"a": torch.randn(8, 4), "b": torch.randn(8, 4) * 5 + 3}
    present = {"a": torch.ones(8, dtype=torch.bool), "b": torch.arange(8) < 5}
    out = method(features, present)
    alone = copy.deepcopy(method.heads["b"])
    mu, logvar = alone(features["b"][:5])
    torch.testing.assert_close(out.extras["mu/b"][:5], mu)
    torch.testing.assert_close(out.extras["logvar/b"][:5], logvar)
    assert torch.equal(out.weights[5:, 1], torch.zeros(3))
    # One present sample: the running statistics, no error.
    present["b"] = torch.arange(8) == 0
    assert torch.isfinite(method(features, present).logits).all()


def test_uniform_and_oracle_swaps() -> None:
    torch.manual_seed(2)
    method = build_method("pe", _spec("sum")).eval()
    seen: list[torch.Tensor] = []
    method.fusion.register_forward_hook(
        lambda mod, args, kwargs, out: seen.append(kwargs["weights"]), with_kwargs=True
    )
    features = {"a": torch.randn(6, 4), "b": torch.randn(6, 4) * 3}
    present = {"a": torch.ones(6, dtype=torch.bool), "b": torch.tensor([True] * 5 + [False])}
    learned = method(features, present)
    assert not torch.allclose(learned.weights[:5], torch.full((5, 2), 0.5))
    method.set_weight_mode("uniform")
    uniform = method(features, present)
    torch.testing.assert_close(uniform.weights[:5], torch.full((5, 2), 0.5))
    torch.testing.assert_close(uniform.weights[5], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(seen[-1][:5], torch.full((5, 2), 2.0))  # 1 + n w = 2
    corrupted = torch.zeros(6, 2, dtype=torch.bool)
    corrupted[:3, 1] = True
    method.set_weight_mode("oracle", corrupted)
    oracle = method(features, present)
    torch.testing.assert_close(oracle.weights[:3], torch.tensor([[1.0, 0.0]] * 3))
    torch.testing.assert_close(seen[-1][:3], torch.tensor([[3.0, 1.0]] * 3))  # residual: 1 + 0
    # Rows with nothing corrupted get uniform weights (base.replacement_weights).
    torch.testing.assert_close(oracle.weights[3:], uniform.weights[3:])
    assert not torch.allclose(oracle.logits[:3], learned.logits[:3])
    method.set_weight_mode("learned")
    torch.testing.assert_close(method(features, present).logits, learned.logits)


def test_uniform_twin_trains_with_uniform_weights() -> None:
    torch.manual_seed(0)
    method = build_method("pe", _spec(), {"pe": {"weights": "uniform"}})
    assert method.has_dynamic_weights and method.trained_weights == "uniform"
    target = torch.randint(0, 2, (64,))
    features = {"a": target[:, None].float().repeat(1, 4) * 2 - 1, "b": torch.randn(64, 4)}
    present = {m: torch.ones(64, dtype=torch.bool) for m in features}
    batch = Batch(inputs=features, present=present, target=target, index=torch.arange(64))
    optimiser = torch.optim.Adam(method.parameters(), lr=0.02)
    for _ in range(40):
        optimiser.zero_grad()
        sum(method.losses(method(features, present), batch).values()).backward()
        optimiser.step()
    out = method.eval()(features, present)
    assert (out.logits.argmax(1) == target).float().mean() > 0.95
    torch.testing.assert_close(out.weights, torch.full((64, 2), 0.5))
    assert not torch.allclose(out.extras["learned_weights"], out.weights)
    with pytest.raises(ConfigError):
        build_method("pe", _spec(), {"pe": {"weights": "oracle"}})
