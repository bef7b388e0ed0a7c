"""OGM-GE generalised to M modalities: ratios, coefficients, the authors' sliced linear head,
gradient modulation, presets and recipe."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from robustfusion.errors import ConfigError
from robustfusion.methods.base import MethodSpec, build_method
from robustfusion.methods.ogm_ge import OGMGE, discrepancy_ratios, modulation_coefficients
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


def test_fusion_head_contributions_use_only_one_modality() -> None:
    method, encoders, inputs, present, _ = _setup(preset="generalised")
    assert method.head == "fusion"
    features = {m: encoders[m](inputs[m]) for m in inputs}
    out = method(features, present)
    alone = {"a": torch.ones(32, dtype=torch.bool), "b": torch.zeros(32, dtype=torch.bool)}
    torch.testing.assert_close(
        out.unimodal_logits["a"], method.classifier(method.fusion(features, alone))
    )
    torch.testing.assert_close(out.weights.sum(1), torch.ones(32))


def _hand_method(alpha: float = 1.0) -> OGMGE:
    """Two 1-D modalities, two classes, ``W = [[1, 0], [0, 1]]`` (columns: a, b), ``b = [0, 2 ln 2]``."""
    spec = MethodSpec(modalities=("a", "b"), feature_dims={"a": 1, "b": 1}, num_classes=2)
    method = OGMGE(spec, alpha=alpha)
    with torch.no_grad():
        method.linear_head.linear.weight.copy_(torch.eye(2))
        method.linear_head.linear.bias.copy_(torch.tensor([0.0, 2 * math.log(2.0)]))
    return method


def test_linear_head_slices_the_weight_and_halves_the_bias_as_the_code() -> None:
    """``out_a = z_a W_a^T + b / 2`` [code], worked by hand down to ``k = 1 - tanh(alpha rho)``.

    Sample 0 (label 0): z = (ln 3, ln 2): out_a = (ln 3, ln 2) -> p = (3/5, 2/5);
    out_b = (0, ln 2 + ln 2) -> p = (1/5, 4/5). Sample 1 (label 1): z = (0, 0): both outputs are
    (0, ln 2) -> p = (1/3, 2/3). So s_a = 3/5 + 2/3 = 19/15, s_b = 1/5 + 2/3 = 13/15,
    rho_a = 19/13 and k_a = 1 - tanh(19/13) with alpha = 1; k_b = 1.
    """
    method = _hand_method()
    assert method.head == "linear" and method.recipe == "released" and method.modulate == "auto"
    features = {
        "a": torch.tensor([[math.log(3.0)], [0.0]]),
        "b": torch.tensor([[math.log(2.0)], [0.0]]),
    }
    present = {m: torch.ones(2, dtype=torch.bool) for m in features}
    batch = Batch(
        inputs=features, present=present, target=torch.tensor([0, 1]), index=torch.arange(2)
    )
    out = method(features, present)
    ln2, ln3 = math.log(2.0), math.log(3.0)
    torch.testing.assert_close(out.unimodal_logits["a"], torch.tensor([[ln3, ln2], [0.0, ln2]]))
    torch.testing.assert_close(out.unimodal_logits["b"], torch.tensor([[0.0, 2 * ln2], [0.0, ln2]]))
    # The fused logits are the one linear layer, W [z_a; z_b] + b: the outputs' sum.
    torch.testing.assert_close(out.logits, torch.tensor([[ln3, 3 * ln2], [0.0, 2 * ln2]]))
    torch.testing.assert_close(out.logits, out.unimodal_logits["a"] + out.unimodal_logits["b"])
    method.train()
    method.losses(out, batch)
    torch.testing.assert_close(method.scores, torch.tensor([19 / 15, 13 / 15]))
    torch.testing.assert_close(
        method.coefficients, torch.tensor([1 - math.tanh(19 / 13), 1.0]), rtol=0, atol=1e-6
    )
    assert float(method.coefficients[0]) == pytest.approx(0.10195, abs=1e-4)
    # An absent modality: its output is zeroed and its samples leave its score.
    present["b"] = torch.tensor([True, False])
    out = method(features, present)
    torch.testing.assert_close(out.unimodal_logits["b"][1], torch.zeros(2))
    method.losses(out, batch.replace(present=present))
    torch.testing.assert_close(method.scores, torch.tensor([19 / 15, 1 / 5]))


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
        ("auto", {"0.weight"}),  # an encoder with convolutions: the code's rule
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


def test_auto_modulates_the_weight_matrices_of_an_encoder_without_convolutions() -> None:
    """The code's 4-D rule would leave an MLP encoder alone: ``auto`` takes its weights, ``conv``
    (literally the code's rule) nothing."""
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.LayerNorm(4))
    for modulate, expected in (
        ("auto", [(4, 3), (4, 4)]),
        ("conv", []),
        ("weights", [(4, 3), (4, 4)]),
    ):
        method, *_ = _setup(modulate=modulate)
        assert [tuple(p.shape) for p in method.modulated_parameters(mlp)] == expected


def test_presets_recipe_and_learning_rate_step() -> None:
    assert OGMGE.training_defaults({}) == {
        "optimizer": "sgd",
        "lr": 1e-3,
        "momentum": 0.9,
        "weight_decay": 1e-4,
    }
    assert OGMGE.training_defaults({"preset": "generalised"}) == {}
    assert OGMGE.training_defaults({"recipe": "none"}) == {}
    assert (
        OGMGE.training_defaults({"preset": "generalised", "recipe": "released"})["optimizer"]
        == "sgd"
    )
    released, *_ = _setup()
    # The code's StepLR(70, 0.1) of 100 epochs: x 0.1 from epoch 70.
    assert [released.lr_scale(e, 100) for e in (0, 69, 70, 99)] == [1.0, 1.0, 0.1, 0.1]
    assert released.lr_scale(6, 10) == 1.0 and released.lr_scale(7, 10) == 0.1
    generalised, *_ = _setup(preset="generalised")
    assert (generalised.head, generalised.modulate, generalised.recipe) == (
        "fusion",
        "weights",
        "none",
    )
    assert generalised.lr_scale(99, 100) == 1.0
    # An option given explicitly wins over the preset.
    mixed, *_ = _setup(preset="generalised", head="linear", lr_step_at=0.5)
    assert mixed.head == "linear" and mixed.lr_scale(5, 10) == 0.1
    # The linear layer exists for concat and sum: attention and gated get the fusion head.
    spec = MethodSpec(("a", "b"), {"a": 4, "b": 4}, 3, fusion="attention", hidden_dim=8)
    assert build_method("ogm_ge", spec).head == "fusion"
    with pytest.raises(ConfigError, match="head=linear"):
        build_method("ogm_ge", spec, {"ogm_ge": {"head": "linear"}})


@pytest.mark.parametrize(
    "options",
    [
        {"modulate": "biases"},
        {"recipe": "adam"},
        {"preset": "paper"},
        {"head": "mlp"},
        {"modulation_ends": 1.5},
        {"lr_step_at": 2.0},
        {"lr_step": 0.0},
    ],
)
def test_bad_options(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        _setup(**options)


def _ddp_worker(rank: int, init_file: str, results: dict[int, list[float]]) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        method = _hand_method()
        z = [math.log(3.0), 0.0][rank]  # rank 0: sample 0 of the hand example, rank 1: sample 1
        features = {"a": torch.tensor([[z]]), "b": torch.tensor([[[math.log(2.0), 0.0][rank]]])}
        present = {m: torch.ones(1, dtype=torch.bool) for m in features}
        batch = Batch(features, present, torch.tensor([rank]), torch.tensor([rank]))
        method.losses(method(features, present), batch)
        results[rank] = method.scores.tolist() + method.coefficients.tolist()
    finally:
        dist.destroy_process_group()


def test_scores_are_averaged_over_processes_under_ddp(
    tmp_path: Path, two_processes: Callable[..., dict]
) -> None:
    """Two gloo processes, each with one sample of the hand example: every process gets the
    coefficient of the whole batch (the code's DataParallel), not of its own half."""
    results = two_processes(_ddp_worker, str(tmp_path / "init"))
    assert results[0] == results[1]
    scores, k = torch.tensor(results[0][:2]), torch.tensor(results[0][2:])
    torch.testing.assert_close(scores, torch.tensor([19 / 30, 13 / 30]))
    torch.testing.assert_close(k, torch.tensor([1 - math.tanh(19 / 13), 1.0]), rtol=0, atol=1e-6)
