"""MMPareto: the two-gradient formulas by hand, a step against the released code, M >= 2, DDP."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfusion.errors import ConfigError
from robustfusion.methods.base import MethodSpec, build_method
from robustfusion.methods.mmpareto import (
    MMPareto,
    encoder_groups,
    integrate,
    min_norm_weight,
    pareto_weight,
    rescale,
)
from robustfusion.model import MultimodalModel
from robustfusion.types import Batch


def _t(*values: float) -> Tensor:
    return torch.tensor(values)


def _spec(modalities: tuple[str, ...] = ("a", "b")) -> MethodSpec:
    return MethodSpec(
        modalities=modalities,
        feature_dims={m: 4 for m in modalities},
        num_classes=3,
        hidden_dim=8,
    )


def _model(
    modalities: tuple[str, ...] = ("a", "b"), seed: int = 0, **options: object
) -> MultimodalModel:
    torch.manual_seed(seed)
    encoders = {m: nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 4)) for m in modalities}
    method = build_method("mmpareto", _spec(modalities), {"mmpareto": options})
    return MultimodalModel(encoders, method).train()


def _batch(modalities: tuple[str, ...] = ("a", "b"), n: int = 16, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 3, (n,), generator=g)
    inputs = {m: torch.randn(n, 5, generator=g) + target[:, None].float() for m in modalities}
    present = {m: torch.ones(n, dtype=torch.bool) for m in modalities}
    return Batch(inputs=inputs, present=present, target=target, index=torch.arange(n))


# --------------------------------------------------------------------------- formulas by hand
def test_two_gradient_min_norm_weight() -> None:
    # g1 = (1, 0), g2 = (-1, 1): c = (v22 - v12) / (v11 + v22 - 2 v12) = (2 + 1) / (1 + 2 + 2).
    assert float(min_norm_weight(_t(1.0), _t(-1.0), _t(2.0))) == pytest.approx(0.6)
    # ... and c g1 + (1 - c) g2 = (0.2, 0.4) is orthogonal to g1 - g2 = (2, -1): the min-norm point.
    # The code's clamps, reached when a gradient is zero.
    assert float(min_norm_weight(_t(0.0), _t(0.0), _t(1.0))) == pytest.approx(0.999)
    assert float(min_norm_weight(_t(1.0), _t(0.0), _t(0.0))) == pytest.approx(0.001)


def test_cosine_switch() -> None:
    # cos > 0: equal weights whatever the norms; cos <= 0: the min-norm weight.
    assert float(pareto_weight(_t(9.0), _t(0.1), _t(1.0))) == 0.5
    assert float(pareto_weight(_t(1.0), _t(-1.0), _t(2.0))) == pytest.approx(0.6)
    # Orthogonal (cos = 0) counts as a conflict, as in the code (``if cos > 0``): v22 / (v11 + v22).
    assert float(pareto_weight(_t(1.0), _t(0.0), _t(3.0))) == pytest.approx(0.75)


def test_integration_by_hand() -> None:
    # No conflict: h = 2 (g_m / 2 + g_u / 2) = g_m + g_u, then x gamma.
    new, cos, alpha = integrate([_t(1.0, 0.0)], [_t(1.0, 1.0)], gamma=1.5)
    torch.testing.assert_close(new[0], _t(3.0, 1.5))
    assert float(alpha) == 0.5 and float(cos) == pytest.approx(1 / math.sqrt(2))
    # Conflict: alpha = 0.6, h = 2 (0.2, 0.4) = (0.4, 0.8), shorter than g_m + g_u = (0, 1): it is
    # rescaled to norm 1, then x 1.5: 1.5 (1, 2) / sqrt(5).
    new, cos, alpha = integrate([_t(1.0, 0.0)], [_t(-1.0, 1.0)], gamma=1.5)
    torch.testing.assert_close(new[0], 1.5 * _t(1.0, 2.0) / math.sqrt(5))
    assert float(alpha) == pytest.approx(0.6) and float(cos) == pytest.approx(-1 / math.sqrt(2))


def test_rescaling_is_per_tensor_and_never_shrinks() -> None:
    # One encoder, two tensors: g_m = ([3], [0]), g_u = ([-1], [1]) -> flat v11 = 9, v12 = -3,
    # v22 = 2, alpha = 5 / 17, h = 2 (5/17 g_m + 12/17 g_u) = ([6/17], [24/17]).
    new, _, alpha = integrate([_t(3.0), _t(0.0)], [_t(-1.0), _t(1.0)], gamma=1.5)
    assert float(alpha) == pytest.approx(5 / 17)
    # Tensor 1: |h| = 6/17 < |g_m + g_u| = 2 -> rescaled to 2, x 1.5 = 3.
    torch.testing.assert_close(new[0], _t(3.0))
    # Tensor 2: |h| = 24/17 > |g_m + g_u| = 1 -> kept (the code's ``diff > 1`` test), x 1.5.
    torch.testing.assert_close(new[1], _t(1.5 * 24 / 17))


def test_zero_combined_gradient_stays_zero() -> None:
    # g_m = [3], g_u = [-1]: alpha = (1 + 3) / (9 + 1 + 6) = 1/4, h = 2 (3/4 - 3/4) = 0 while
    # |g_m + g_u| = 2: the code's diff = 2 / 0 = inf and inf * 0 = NaN; we keep 0.
    new, _, alpha = integrate([_t(3.0), _t(1.0)], [_t(-1.0), _t(0.0)], gamma=1.5)
    assert float(alpha) != 0.5
    assert torch.isfinite(new[0]).all()
    code = torch.linalg.norm(_t(2.0)) / torch.linalg.norm(_t(0.0)) * _t(0.0)
    assert torch.isnan(code).all()  # what the released code computes for such a tensor
    new, _, alpha = integrate([_t(3.0)], [_t(-1.0)], gamma=1.5)
    assert float(alpha) == 0.25
    torch.testing.assert_close(new[0], _t(0.0))
    assert rescale([_t(0.0, 0.0)], [_t(0.0, 0.0)], 1.5)[0].tolist() == [0.0, 0.0]


# --------------------------------------------------------------------------- the released code
def _released_step(
    model: MultimodalModel, batch: Batch, gamma: float = 1.5, wrapped: nn.Module | None = None
) -> dict[str, Tensor]:
    """``train_epoch`` of the released ``MMPareto.py`` (one backward per loss with
    ``retain_graph=True``, then the summed loss, then ``param.grad`` overwritten), for M
    modalities as documented; returns every parameter's gradient. ``wrapped``: the model's DDP
    wrapper, to run the forward pass through."""
    method, encoders = model.method, model.encoders
    mods = method.modalities
    named = {m: list(encoders[m].named_parameters()) for m in mods}
    out = (wrapped or model)(batch)
    loss_mm = F.cross_entropy(out.logits, batch.target)
    loss_u = {m: F.cross_entropy(out.unimodal_logits[m], batch.target) for m in mods}
    grads: dict[tuple[str, str], dict[str, Tensor]] = {}
    for task, loss in [("both", loss_mm), *loss_u.items()]:
        model.zero_grad()
        loss.backward(retain_graph=True)
        for m in mods if task == "both" else [task]:
            grads[(task, m)] = {name: p.grad.clone() for name, p in named[m]}
    model.zero_grad()
    k: dict[str, tuple[float, float]] = {}
    for m in mods:
        both = torch.cat([g.flatten() for g in grads[("both", m)].values()])
        own = torch.cat([g.flatten() for g in grads[(m, m)].values()])
        if F.cosine_similarity(both, own, dim=0) > 0:
            k[m] = (0.5, 0.5)
        else:  # MinNormSolver._min_norm_element_from2
            v1v1, v1v2, v2v2 = float(both @ both), float(both @ own), float(own @ own)
            if v1v2 >= v1v1:
                c = 0.999
            elif v1v2 >= v2v2:
                c = 0.001
            else:
                c = -1.0 * ((v1v2 - v2v2) / (v1v1 + v2v2 - 2 * v1v2))
            k[m] = (c, 1 - c)
    (loss_mm + sum(loss_u.values())).backward()
    for m in mods:
        for name, param in named[m]:
            three_norm = torch.norm(param.grad.clone())
            new_grad = 2 * k[m][0] * grads[("both", m)][name] + 2 * k[m][1] * grads[(m, m)][name]
            diff = three_norm / torch.norm(new_grad)
            param.grad = diff * new_grad * gamma if diff > 1 else new_grad * gamma
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def _our_step(model: MultimodalModel, batch: Batch) -> dict[str, Tensor]:
    model.zero_grad()
    terms = model.method.losses(model(batch), batch)
    assert float(terms["mmpareto"].detach()) == 0.0  # the term only acts in the backward pass
    sum(terms.values()).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("modalities", [("a", "b"), ("a", "b", "c")])
def test_a_step_gives_the_released_codes_gradients(modalities: tuple[str, ...]) -> None:
    alphas: list[float] = []
    for seed in range(4):
        ours_model = _model(modalities, seed)
        theirs_model = _model(modalities, seed)
        batch = _batch(modalities, seed=seed)
        ours = _our_step(ours_model, batch)
        theirs = _released_step(theirs_model, batch)
        assert set(ours) == set(theirs)
        for name in ours:
            torch.testing.assert_close(ours[name], theirs[name], rtol=1e-4, atol=1e-6, msg=name)
        alphas += [v for k, v in ours_model.method.logged_values().items() if "alpha" in k]
    assert any(a == 0.5 for a in alphas) and any(a != 0.5 for a in alphas)  # both branches


def test_each_encoder_is_its_own_two_task_problem() -> None:
    model = _model(("a", "b", "c"))
    batch = _batch(("a", "b", "c"))
    out = model(batch)
    features = {m: out.extras[f"mmpareto.feature.{m}"] for m in model.method.modalities}
    groups = encoder_groups(features, model.method.modalities)
    assert [owners for owners, _ in groups] == [("a",), ("b",), ("c",)]
    for (_, params), m in zip(groups, "abc", strict=True):
        assert {id(p) for p in params} == {id(p) for p in model.encoders[m].parameters()}
    # The heads are not encoder parameters: they keep the plain gradient of the summed losses.
    terms = model.method.losses(out, batch)
    sum(terms.values()).backward()
    head = model.method.classifier.weight.grad.clone()
    model.zero_grad()
    out = model(batch)
    (F.cross_entropy(out.logits, batch.target)).backward()
    torch.testing.assert_close(head, model.method.classifier.weight.grad)


def test_an_encoder_shared_by_two_modalities_is_one_problem() -> None:
    torch.manual_seed(0)
    shared = nn.Linear(5, 4)
    method = build_method("mmpareto", _spec(("a", "b", "c")))
    model = MultimodalModel({"a": shared, "b": shared, "c": nn.Linear(5, 4)}, method).train()
    out = model(_batch(("a", "b", "c")))
    features = {m: out.extras[f"mmpareto.feature.{m}"] for m in method.modalities}
    groups = encoder_groups(features, method.modalities)
    assert [owners for owners, _ in groups] == [("a", "b"), ("c",)]
    terms = method.losses(out, _batch(("a", "b", "c")))
    sum(terms.values()).backward()
    assert set(method.logged_values()) == {
        "mmpareto/cos_a+b", "mmpareto/alpha_a+b", "mmpareto/cos_c", "mmpareto/alpha_c"
    }  # fmt: skip


def test_absent_samples_do_not_count_in_the_unimodal_loss() -> None:
    model = _model()
    batch = _batch()
    present = dict(batch.present)
    present["b"] = torch.arange(16) < 4
    masked = Batch(batch.inputs, present, batch.target, batch.index)
    out = model(masked)
    terms = model.method.losses(out, masked)
    expected = F.cross_entropy(out.unimodal_logits["a"], batch.target) + F.cross_entropy(
        out.unimodal_logits["b"][:4], batch.target[:4]
    )
    torch.testing.assert_close(terms["unimodal_ce"], expected)


def test_evaluation_adds_nothing() -> None:
    model = _model().eval()
    batch = _batch()
    with torch.no_grad():
        out = model(batch)
        terms = model.method.losses(out, batch)
    assert out.extras == {} and set(terms) == {"ce", "unimodal_ce"}
    torch.testing.assert_close(out.weights, torch.full((16, 2), 0.5))
    assert set(out.unimodal_logits) == {"a", "b"}


def test_training_learns_a_separable_task() -> None:
    model = _model()
    batch = _batch(n=64)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(40):
        optimiser.zero_grad()
        terms = model.method.losses(model(batch), batch)
        sum(terms.values()).backward()
        model.method.after_backward(model.encoders)
        optimiser.step()
    model.eval()
    with torch.no_grad():
        logits = model(batch).logits
    assert (logits.argmax(1) == batch.target).float().mean() > 0.9


def test_recipe_schedule_and_options() -> None:
    assert MMPareto.training_defaults({}) == {
        "optimizer": "sgd", "lr": 2e-3, "momentum": 0.9, "weight_decay": 1e-4
    }  # fmt: skip
    assert MMPareto.training_defaults({"recipe": "none"}) == {}
    method = build_method("mmpareto", _spec())
    assert [method.lr_scale(e, 50) for e in (0, 29, 30, 49)] == [1.0] * 4  # never stepped
    stepped = build_method("mmpareto", _spec(), {"mmpareto": {"step_lr": True}})
    assert [stepped.lr_scale(e, 50) for e in (0, 29, 30, 49)] == [1.0, 1.0, 0.1, 0.1]


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"gamma": 0}, "gamma"),
        ({"gamma": "2"}, "gamma"),
        ({"sync": "all"}, "sync"),
        ({"recipe": "paper"}, "recipe"),
        ({"step_lr": "yes"}, "step_lr"),
        ({"alpha": 1.0}, "bad options"),
    ],
)
def test_bad_options_raise_one_line_config_errors(options: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as error:
        build_method("mmpareto", _spec(), {"mmpareto": options})
    assert "\n" not in str(error.value)


# --------------------------------------------------------------------------- DDP
def _ddp_worker(rank: int, init_file: str, sync: str, results: dict) -> None:
    """Two steps of ours (``sync``), or (``sync="released"``) one of the released code."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        model = _model(sync="global" if sync == "released" else sync)
        wrapped = DistributedDataParallel(model)
        optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
        full = _batch(n=16)
        rows = slice(8 * rank, 8 * rank + 8)
        half = Batch(
            {m: x[rows] for m, x in full.inputs.items()},
            {m: p[rows] for m, p in full.present.items()},
            full.target[rows],
            full.index[rows],
        )
        if sync == "released":
            try:
                _released_step(model, half, wrapped=wrapped)
            except RuntimeError as error:
                results[rank] = str(error)
            return
        grads = []
        for _ in range(2):  # a second step fails if the first left DDP's reducer unfinished
            optimiser.zero_grad()
            out = wrapped(half)
            sum(model.method.losses(out, half).values()).backward()
            grads.append([p.grad.clone() for p in model.parameters()])
            optimiser.step()
        results[rank] = grads
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("sync", ["global", "local"])
@pytest.mark.timeout(120)
def test_ddp_one_backward_and_the_global_batchs_gradient(
    tmp_path: Path, sync: str, two_processes: Callable[..., dict]
) -> None:
    """Two gloo processes, each half of a batch: no "mark a variable ready only once", the same
    gradients on both, and with ``sync=global`` those of one process on the whole batch."""
    results = two_processes(_ddp_worker, str(tmp_path / "init"), sync)
    for first, second in zip(results[0][0], results[1][0], strict=True):
        torch.testing.assert_close(first, second)
    single = _model()
    expected = _our_step(single, _batch(n=16))
    got = dict(zip(expected, results[0][0], strict=True))
    encoder = [name for name in expected if name.startswith("encoders.")]
    if sync == "global":
        for name, grad in expected.items():
            torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    else:  # heads are the same; the encoders integrate per process, then DDP averages
        for name in expected:
            if name not in encoder:
                torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6)
        assert any(not torch.allclose(got[n], expected[n], rtol=1e-3) for n in encoder)


@pytest.mark.timeout(120)
def test_the_released_codes_backward_passes_break_ddp(
    tmp_path: Path, two_processes: Callable[..., dict]
) -> None:
    """The trap this implementation avoids: several backward passes per DDP forward."""
    results = two_processes(_ddp_worker, str(tmp_path / "init"), "released")
    assert "mark a variable ready only once" in results[0]


@pytest.mark.timeout(300)
def test_ddp_training_through_the_cli(tiny_npz: Path, tmp_path: Path) -> None:
    """``robustfusion train --strategy ddp --devices 2`` on the CPU (gloo) finishes: about 25 s."""
    out = tmp_path / "run"
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "robustfusion", "train", "--data", str(tiny_npz),
         "--method", "mmpareto", "--epochs", "2", "--accelerator", "cpu", "--strategy", "ddp",
         "--devices", "2", "--out", str(out)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "mmpareto" and 0.0 <= metrics["accuracy"] <= 1.0
    header = (out / "logs" / "metrics.csv").read_text().splitlines()[0]
    assert "method/mmpareto/alpha_a" in header and "loss/mmpareto" in header
    print(f"DDP CLI run: {seconds:.1f} s")
