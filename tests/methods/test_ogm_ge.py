"""OGM-GE generalised to M modalities: ratios, coefficients, gradient modulation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robustfusion.methods.base import MethodSpec, build_method
from robustfusion.methods.ogm_ge import discrepancy_ratios, modulation_coefficients
from robustfusion.types import Batch


def test_ratios_and_coefficients() -> None:
    torch.testing.assert_close(
        discrepancy_ratios(torch.tensor([6.0, 3.0])), torch.tensor([2.0, 0.5])
    )
    # M = 3: rho_0 = 6 / mean(3, 1) = 3, rho_1 = 3 / 3.5, rho_2 = 1 / 4.5.
    torch.testing.assert_close(
        discrepancy_ratios(torch.tensor([6.0, 3.0, 1.0])), torch.tensor([3.0, 3 / 3.5, 1 / 4.5])
    )
    # Eq. 10 and the official code: 1 - tanh(alpha rho) for rho > 1, else 1.
    k = modulation_coefficients(torch.tensor([2.0, 0.5, 1.0]), alpha=0.5)
    torch.testing.assert_close(k, torch.tensor([1 - math.tanh(1.0), 1.0, 1.0]))
    # It jumps at rho = 1 (from 1 to 1 - tanh(alpha)); the offset option makes it continuous.
    just_above = modulation_coefficients(torch.tensor([1.0001]), alpha=0.5)
    assert float(just_above) == pytest.approx(1 - math.tanh(0.5), abs=1e-4)
    k_offset = modulation_coefficients(torch.tensor([2.0, 1.0001]), alpha=0.5, offset=1.0)
    torch.testing.assert_close(k_offset, torch.tensor([1 - math.tanh(0.5), 1.0]), atol=1e-4, rtol=0)


def _setup(**options: object) -> tuple[nn.Module, nn.ModuleDict, dict, dict, torch.Tensor]:
    torch.manual_seed(0)
    spec = MethodSpec(
        modalities=("a", "b"),
        feature_dims={"a": 4, "b": 4},
        num_classes=3,
        fusion="sum",
        hidden_dim=8,
    )
    method = build_method("ogm_ge", spec, {"ogm_ge": options})
    encoders = nn.ModuleDict({"a": nn.Linear(5, 4), "b": nn.Linear(5, 4)})
    target = torch.randint(0, 3, (32,))
    # Modality a carries the label, b is noise: a dominates.
    inputs = {"a": nn.functional.one_hot(target, 5).float() * 3, "b": torch.randn(32, 5)}
    present = {m: torch.ones(32, dtype=torch.bool) for m in inputs}
    return method, encoders, inputs, present, target


def test_dominant_encoder_gradient_is_scaled_and_window_respected() -> None:
    method, encoders, inputs, present, target = _setup(alpha=0.8, ge=False)
    optimiser = torch.optim.Adam([*method.parameters(), *encoders.parameters()], lr=0.05)
    batch = Batch(inputs=inputs, present=present, target=target, index=torch.arange(32))
    for _ in range(30):  # let modality a become dominant
        optimiser.zero_grad()
        out = method({m: encoders[m](inputs[m]) for m in inputs}, present)
        sum(method.losses(out, batch).values()).backward()
        optimiser.step()
    optimiser.zero_grad()
    out = method({m: encoders[m](inputs[m]) for m in inputs}, present)
    sum(method.losses(out, batch).values()).backward()
    raw = {m: encoders[m].weight.grad.clone() for m in inputs}
    k = method.coefficients.clone()
    assert float(method.scores[0]) > float(method.scores[1])
    assert float(k[0]) < 1.0 and float(k[1]) == 1.0
    rho = float(method.scores[0] / method.scores[1])
    assert float(k[0]) == pytest.approx(1 - math.tanh(0.8 * rho), rel=1e-5)
    raw_bias = encoders["a"].bias.grad.clone()
    method.on_epoch_start(0, 10)
    method.after_backward(encoders)
    torch.testing.assert_close(encoders["a"].weight.grad, raw["a"] * k[0])
    torch.testing.assert_close(encoders["a"].bias.grad, raw_bias)  # biases are not modulated
    torch.testing.assert_close(encoders["b"].weight.grad, raw["b"])
    # modulation_ends = 0.5 of 10 epochs: epoch 5 is inside (both ends included, as the code's
    # ``starts <= epoch <= ends``), epoch 6 outside.
    method.on_epoch_start(5, 10)
    assert bool(method.active)
    method.on_epoch_start(6, 10)
    before = encoders["a"].weight.grad.clone()
    method.after_backward(encoders)
    torch.testing.assert_close(encoders["a"].weight.grad, before)


def test_ge_noise_has_the_gradient_std() -> None:
    method, _, _, _, _ = _setup(ge=True)
    encoder = nn.ModuleDict({"a": nn.Linear(200, 200), "b": nn.Linear(2, 2)})
    torch.manual_seed(1)
    grad = torch.randn(200, 200) * 2.0
    encoder["a"].weight.grad = grad.clone()
    method.coefficients.copy_(torch.tensor([0.5, 1.0]))
    method.after_backward(encoder)
    noise = encoder["a"].weight.grad - 0.5 * grad
    assert float(noise.std()) == pytest.approx(float(grad.std()), rel=0.02)


def test_contribution_logits_use_only_one_modality() -> None:
    method, encoders, inputs, present, _ = _setup()
    features = {m: encoders[m](inputs[m]) for m in inputs}
    out = method(features, present)
    alone = {"a": torch.ones(32, dtype=torch.bool), "b": torch.zeros(32, dtype=torch.bool)}
    torch.testing.assert_close(
        out.unimodal_logits["a"], method.classifier(method.fusion(features, alone))
    )
    torch.testing.assert_close(out.weights.sum(1), torch.ones(32))


def _conv_encoder() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3),
        nn.BatchNorm2d(2),
        nn.Flatten(),
        nn.Linear(2 * 4 * 4, 4),
        nn.LayerNorm(4),
    )


@pytest.mark.parametrize(
    ("modulate", "scaled"),
    [
        ("weights", {"0.weight", "3.weight"}),  # conv and linear weights
        ("conv", {"0.weight"}),  # the code's rule: 4-D weights only
        (
            "all",
            {
                "0.weight",
                "0.bias",
                "1.weight",
                "1.bias",
                "3.weight",
                "3.bias",
                "4.weight",
                "4.bias",
            },
        ),
    ],
)
def test_modulate_chooses_which_encoder_gradients_are_scaled(
    modulate: str, scaled: set[str]
) -> None:
    method, _, _, _, _ = _setup(ge=False, modulate=modulate)
    encoders = nn.ModuleDict({"a": _conv_encoder(), "b": nn.Linear(2, 2)})
    encoders["a"](torch.randn(3, 1, 6, 6)).sum().backward()
    raw = {name: p.grad.clone() for name, p in encoders["a"].named_parameters()}
    method.coefficients.copy_(torch.tensor([0.25, 1.0]))
    method.after_backward(encoders)
    for name, p in encoders["a"].named_parameters():
        expected = raw[name] * (0.25 if name in scaled else 1.0)
        torch.testing.assert_close(p.grad, expected, msg=name)


def test_released_recipe_and_bad_options() -> None:
    from robustfusion.errors import ConfigError
    from robustfusion.methods.ogm_ge import OGMGE

    assert OGMGE.training_defaults({}) == {}
    assert OGMGE.training_defaults({"recipe": "released"}) == {
        "optimizer": "sgd",
        "lr": 1e-3,
        "momentum": 0.9,
        "weight_decay": 1e-4,
    }
    for options in ({"modulate": "biases"}, {"recipe": "adam"}, {"modulation_ends": 1.5}):
        with pytest.raises(ConfigError):
            _setup(**options)
