"""Tests of MWAM (methods/mwam.py): Eq. 5 weights, bank, modes, composition, inference graph."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, MethodSpec, build_method
from robustfusion.methods.mwam import MWAM, PRESETS, modulation_weight
from robustfusion.methods.static import StaticFusion
from robustfusion.modules.frequency import frm
from robustfusion.types import Batch

SPEC = MethodSpec(
    modalities=("image", "audio"),
    feature_dims={"image": 6, "audio": 5},
    num_classes=3,
    hidden_dim=8,
    input_shapes={"image": (1, 8, 8), "audio": (1, 8, 16)},
    input_kinds={"image": "image", "audio": "spectrogram"},
)


def _batch(seed: int = 0, n: int = 8) -> Batch:
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 1, 8, 8, generator=g)
    smooth = F.avg_pool2d(noise, 5, stride=1, padding=2) * 4  # low-frequency: high FRM
    return Batch(
        inputs={"image": smooth, "audio": torch.randn(n, 1, 8, 16, generator=g)},
        present={m: torch.ones(n, dtype=torch.bool) for m in ("image", "audio")},
        target=torch.arange(n) % 3,
        index=torch.arange(n),
    )


def _encoders(seed: int = 0) -> nn.ModuleDict:
    torch.manual_seed(seed)
    return nn.ModuleDict(
        {
            "image": nn.Sequential(nn.Flatten(), nn.Linear(64, 6), nn.ReLU()),
            "audio": nn.Sequential(nn.Flatten(), nn.Linear(128, 5), nn.ReLU()),
        }
    )


def _step(method: Method, encoders: nn.ModuleDict, batch: Batch) -> dict[str, Tensor]:
    method.train()
    batch = method.prepare_batch(batch, True)
    features = {m: encoders[m](batch.inputs[m]) for m in batch.modalities}
    output = method(features, batch.present)
    terms = method.losses(output, batch)
    sum(terms.values()).backward()
    method.after_backward(encoders)
    return terms


def test_paper_defaults_give_the_published_weights() -> None:
    k = modulation_weight(torch.tensor([0.0, 0.7, 1.0]), **PRESETS["paper"])
    torch.testing.assert_close(k, torch.tensor([1.485, 1.0, 0.642]), atol=5e-4, rtol=0)
    assert float(modulation_weight(torch.tensor(1.0), **PRESETS["code"])) == pytest.approx(1.0)


def test_presets_and_overrides() -> None:
    code = MWAM(SPEC, preset="code")
    assert (code.lam, code.gamma) == (10.0, 1.0)
    small = MWAM(SPEC, preset="small_batch", lam=5)
    assert (small.lam, small.gamma, small.alpha) == (5.0, 1.0, 1.5)


def test_bank_ratio_and_weight_follow_eqs_2_5_6() -> None:
    method = MWAM(SPEC, mode="loss", reduction="sum")  # Eq. 4 literally
    encoders = _encoders()
    b1, b2 = _batch(1), _batch(2)
    f1 = torch.stack([frm(b1.inputs[m]) for m in SPEC.modalities])
    f2 = torch.stack([frm(b2.inputs[m]) for m in SPEC.modalities])
    _step(method, encoders, b1)
    torch.testing.assert_close(method.frm_bank, 0.5 * f1)  # first value (1 - omega) F
    _step(method, encoders, b2)
    bank = 0.25 * f1 + 0.5 * f2
    torch.testing.assert_close(method.frm_bank, bank)
    ratio = f2 / (bank.mean() + 1e-6)
    torch.testing.assert_close(method.ratio, ratio)
    torch.testing.assert_close(method.k, modulation_weight(ratio).float())
    # The smooth image dominates: it is slowed down, the audio sped up.
    assert method.k[0] < 1.0 < method.k[1]
    logged = method.logged_values()
    assert logged["mwam.K.image"] == pytest.approx(float(method.k[0]))
    assert logged["mwam.T.audio"] == pytest.approx(float(ratio[1]))
    assert logged["mwam.frm.image"] == pytest.approx(float(f2[0]))


def test_mean_reduction_leaves_t_unchanged_for_equal_size_modalities() -> None:
    spec = MethodSpec(modalities=("a", "b"), feature_dims={"a": 4, "b": 4}, num_classes=3)
    g = torch.Generator().manual_seed(11)
    ratios = {}
    for reduction in ("sum", "mean"):
        method = MWAM(spec, mode="gradient", reduction=reduction).train()
        for step in range(3):
            noise = torch.randn(8, 1, 16, 16, generator=torch.Generator().manual_seed(step))
            batch = Batch(
                inputs={
                    "a": F.avg_pool2d(noise, 3, 1, 1),
                    "b": torch.randn(8, 1, 16, 16, generator=g),
                },
                present={m: torch.ones(8, dtype=torch.bool) for m in ("a", "b")},
                target=torch.zeros(8, dtype=torch.long),
                index=torch.arange(8),
            )
            method.update_weights(batch)
        ratios[reduction] = method.ratio.clone()
        g = torch.Generator().manual_seed(11)
    torch.testing.assert_close(ratios["mean"], ratios["sum"], rtol=1e-6, atol=0)


def test_gradient_mode_scales_only_the_encoder_it_names() -> None:
    batch = _batch(3)
    static, encoders_static = StaticFusion(SPEC), _encoders()
    mwam = MWAM(SPEC, inner=copy.deepcopy(static), mode="gradient")
    encoders_mwam = copy.deepcopy(encoders_static)
    _step(static, encoders_static, batch)
    terms = _step(mwam, encoders_mwam, batch)
    assert set(terms) == {"ce"} and mwam.aux_heads is None
    k = dict(zip(SPEC.modalities, mwam.k.tolist(), strict=True))
    assert k["image"] != pytest.approx(1.0) and k["audio"] != pytest.approx(k["image"])
    for m in SPEC.modalities:
        for p_static, p_mwam in zip(
            encoders_static[m].parameters(), encoders_mwam[m].parameters(), strict=True
        ):
            torch.testing.assert_close(p_mwam.grad, k[m] * p_static.grad)
    # Fusion and classifier (shared layers) are untouched.
    for p_static, p_mwam in zip(static.parameters(), mwam.inner.parameters(), strict=True):
        torch.testing.assert_close(p_mwam.grad, p_static.grad)


def test_loss_mode_adds_k_weighted_unimodal_cross_entropy() -> None:
    method = MWAM(SPEC, mode="loss")
    encoders = _encoders()
    batch = _batch(4)
    batch.present["audio"][:3] = False
    method.train()
    features = {m: encoders[m](batch.inputs[m]) for m in batch.modalities}
    output = method(features, batch.present)
    terms = method.losses(output, batch)
    heads = method.aux_heads
    ce_image = F.cross_entropy(F.linear(features["image"], *heads.head("image")), batch.target)
    ce_audio = F.cross_entropy(
        F.linear(features["audio"], *heads.head("audio"))[3:], batch.target[3:]
    )
    expected = method.k[0] * ce_image + method.k[1] * ce_audio
    torch.testing.assert_close(terms["mwam_aux"], expected)
    torch.testing.assert_close(terms["ce"], F.cross_entropy(output.logits, batch.target))
    # Loss mode leaves gradients alone.
    sum(terms.values()).backward()
    before = [p.grad.clone() for p in encoders.parameters()]
    method.after_backward(encoders)
    for b, p in zip(before, encoders.parameters(), strict=True):
        torch.testing.assert_close(p.grad, b)


def test_nothing_is_added_to_the_inference_graph() -> None:
    static = StaticFusion(SPEC)
    mwam = MWAM(SPEC, inner=copy.deepcopy(static), mode="hybrid")
    encoders = _encoders()
    _step(mwam, encoders, _batch(5))  # K and the bank are now non-trivial
    calls: list[str] = []
    mwam.aux_heads.register_forward_hook(lambda *_: calls.append("aux"))
    mwam.eval()
    static.load_state_dict(mwam.inner.state_dict())
    static.eval()
    batch = _batch(6)
    features = {m: encoders[m](batch.inputs[m]) for m in batch.modalities}
    out_mwam, out_static = mwam(features, batch.present), static(features, batch.present)
    assert calls == []
    assert torch.equal(out_mwam.logits, out_static.logits)
    assert out_mwam.extras == out_static.extras == {}

    def graph_size(t: Tensor) -> int:
        seen, stack = set(), [t.grad_fn]
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            stack.extend(next_fn for next_fn, _ in node.next_functions)
        return len(seen)

    assert graph_size(out_mwam.logits) == graph_size(out_static.logits)
    bank = mwam.frm_bank.clone()
    mwam.losses(out_mwam, batch)  # validation loss: no bank update
    assert torch.equal(mwam.frm_bank, bank)


def test_bank_is_saved_in_the_checkpoint() -> None:
    method = MWAM(SPEC)
    _step(method, _encoders(), _batch(7))
    restored = MWAM(SPEC)
    restored.load_state_dict(method.state_dict())
    assert torch.equal(restored.frm_bank, method.frm_bank) and int(restored.steps) == 1
    assert restored.frm_bank.dtype == torch.float64


def test_composition_by_name() -> None:
    assert isinstance(build_method("mwam", SPEC).inner, StaticFusion)
    composed = build_method(
        "mwam+unimodal", SPEC, {"mwam": {"mode": "loss"}, "unimodal": {"modality": "audio"}}
    )
    assert isinstance(composed, MWAM) and composed.mode == "loss"
    assert composed.inner.modality == "audio"


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "fast"},
        {"preset": "icml"},
        {"source": "logits"},
        {"omega": 1.0},
        {"q": 5},
        {"x": 1},
        {"lam": "steep"},
        {"patch": 8.5},
        {"reduction": "max"},
    ],
)
def test_bad_options_raise_config_errors(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        build_method("mwam", SPEC, {"mwam": options})


def test_feature_source_uses_the_features() -> None:
    method = MWAM(SPEC, source="feature", mode="gradient")
    encoders = _encoders()
    batch = _batch(9)
    method.train()
    features = {m: encoders[m](batch.inputs[m]) for m in batch.modalities}
    method.losses(method(features, batch.present), batch)
    expected = torch.stack([frm(features[m], reduction="mean") for m in SPEC.modalities])
    torch.testing.assert_close(method.frm_last, expected)


def test_shared_encoder_parameters_are_not_scaled_twice() -> None:
    shared = nn.Linear(4, 4)
    encoders = nn.ModuleDict({"image": shared, "audio": shared})
    shared(torch.ones(1, 4)).sum().backward()
    before = shared.weight.grad.clone()
    method = MWAM(SPEC, mode="gradient")
    method.k.copy_(torch.tensor([0.5, 1.5]))
    method.train()
    method.after_backward(encoders)
    torch.testing.assert_close(shared.weight.grad, before)
    assert set(method.grad_scales()) == {"image", "audio"}


def test_hybrid_training_learns_on_synthetic_data() -> None:
    torch.manual_seed(0)
    encoders, method = _encoders(), MWAM(SPEC)
    params = list(encoders.parameters()) + list(method.parameters())
    optimizer = torch.optim.SGD(params, lr=0.1)
    g = torch.Generator().manual_seed(10)
    target = torch.randint(0, 3, (64,), generator=g)
    image = torch.randn(64, 1, 8, 8, generator=g) + target[:, None, None, None].float()
    audio = torch.randn(64, 1, 8, 16, generator=g) - target[:, None, None, None].float()
    batch = Batch(
        inputs={"image": image, "audio": audio},
        present={m: torch.ones(64, dtype=torch.bool) for m in ("image", "audio")},
        target=target,
        index=torch.arange(64),
    )
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        losses.append(float(_step(method, encoders, batch)["ce"].detach()))
        optimizer.step()
    assert losses[-1] < 0.5 * losses[0]
    assert torch.all((method.k > 0.5) & (method.k < 1.5))


def test_on_top_of_modality_dropout_frm_ignores_dropped_samples() -> None:
    method = build_method("mwam+modality_dropout", SPEC, {"modality_dropout": {"p": 0.5}})
    assert isinstance(method, MWAM) and type(method.inner).__name__ == "ModalityDropout"
    batch = _batch(12, n=32)
    dropped = method.prepare_batch(batch, True)
    assert not all(bool(dropped.present[m].all()) for m in SPEC.modalities)
    expected = torch.stack(
        [frm(batch.inputs[m], dropped.present[m], reduction="mean") for m in SPEC.modalities]
    )
    terms = _step(method, _encoders(), batch)
    assert set(terms) == {"ce", "mwam_aux"}
    # The FRM of the dropped batch equals the FRM of the observed samples of the clean batch.
    torch.testing.assert_close(method.frm_last, expected)


def _ddp_worker(rank: int, init_file: str, results: dict[int, list[float]]) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        method = MWAM(SPEC, mode="gradient", reduction="sum").train()
        method.update_weights(_batch(20 + rank))
        results[rank] = method.frm_bank.tolist() + method.k.tolist()
    finally:
        dist.destroy_process_group()


def test_bank_is_all_reduced_under_ddp(tmp_path: Path, two_processes: Callable[..., dict]) -> None:
    """Two gloo processes with different batches end with the same bank: the mean of their FRMs."""
    results = two_processes(_ddp_worker, str(tmp_path / "init"))
    assert results[0] == results[1]
    expected = 0.5 * torch.stack(
        [torch.stack([frm(_batch(20 + r).inputs[m]) for m in SPEC.modalities]) for r in (0, 1)]
    ).mean(0)
    torch.testing.assert_close(torch.tensor(results[0][:2], dtype=torch.float64), expected)


def test_released_preset_is_the_authors_gradient_mode_with_sgd() -> None:
    released = build_method("mwam", SPEC, {"mwam": {"preset": "released"}})
    assert isinstance(released, MWAM)
    assert released.mode == "gradient" and released.aux_heads is None
    assert (released.alpha, released.beta, released.lam, released.gamma) == (1.5, 1.0, 10.0, 1.0)
    assert released.frm_every == 1
    assert MWAM.training_defaults({"preset": "released"}) == {
        "optimizer": "sgd",
        "lr": 1e-3,
        "momentum": 0.9,
        "weight_decay": 5e-4,
    }
    assert MWAM.training_defaults({}) == MWAM.training_defaults({"preset": "code"}) == {}
    # An explicit mode wins over the preset's; other presets keep hybrid.
    assert MWAM(SPEC, preset="released", mode="hybrid").mode == "hybrid"
    assert MWAM(SPEC, preset="code").mode == "hybrid"


def test_frm_every_k_steps_holds_k_in_between() -> None:
    every = MWAM(SPEC, mode="gradient", frm_every=3, reduction="sum").train()
    batches = [_batch(30 + i) for i in range(7)]
    ks = []
    for batch in batches:
        ks.append(every.update_weights(batch).clone())
    assert int(every.steps) == 7
    # FRM, bank and K follow Eqs. 2, 5, 6 over the batches of steps 0, 3 and 6 only.
    reference = MWAM(SPEC, mode="gradient", reduction="sum").train()
    for i in (0, 3, 6):
        reference.update_weights(batches[i])
        torch.testing.assert_close(ks[i], reference.k)
    torch.testing.assert_close(every.frm_bank, reference.frm_bank)
    for i in (1, 2):
        torch.testing.assert_close(ks[i], ks[0])
    for i in (4, 5):
        torch.testing.assert_close(ks[i], ks[3])
    assert not torch.equal(ks[0], ks[3])


@pytest.mark.parametrize("value", [0, 1.5, True, "2"])
def test_frm_every_must_be_a_positive_integer(value: object) -> None:
    with pytest.raises(ConfigError, match="frm_every"):
        build_method("mwam", SPEC, {"mwam": {"frm_every": value}})


def test_logged_shapes_say_what_frm_was_computed_on() -> None:
    method = MWAM(SPEC, mode="gradient")
    method.train().update_weights(_batch(40))
    logged = method.logged_values()
    assert (logged["mwam.h.image"], logged["mwam.w.image"]) == (8.0, 8.0)
    assert (logged["mwam.h.audio"], logged["mwam.w.audio"]) == (8.0, 16.0)
    vectors = MethodSpec(modalities=("u", "v"), feature_dims={"u": 3, "v": 3}, num_classes=2)
    method = MWAM(vectors, mode="gradient").train()
    batch = Batch(
        inputs={"u": torch.randn(4, 24), "v": torch.randn(4, 6)},
        present={m: torch.ones(4, dtype=torch.bool) for m in ("u", "v")},
        target=torch.zeros(4, dtype=torch.long),
        index=torch.arange(4),
    )
    method.update_weights(batch)
    assert method.frm_shapes == {"u": (0, 24), "v": (0, 6)}


def test_auxiliary_heads_of_an_older_checkpoint_load() -> None:
    """A state dict saved with one nn.Linear per modality loads into the stacked heads."""
    from robustfusion.modules.heads import UnimodalHeads

    method = MWAM(SPEC)
    old = UnimodalHeads(SPEC.feature_dims, SPEC.num_classes)
    state = {k: v for k, v in method.state_dict().items() if not k.startswith("aux_heads.")}
    state.update({f"aux_heads.{k}": v for k, v in old.state_dict().items()})
    method.load_state_dict(state)
    x = torch.randn(3, 6)
    torch.testing.assert_close(F.linear(x, *method.aux_heads.head("image")), old.heads["image"](x))
