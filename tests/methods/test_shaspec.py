"""ShaSpec: the fill of a missing modality, the two auxiliary losses (hand-worked values), the
missing-modality training schedule, a training step and the behaviour with a modality absent."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustfusion.errors import ConfigError
from robustfusion.methods.base import MethodSpec, build_method
from robustfusion.methods.shaspec import (
    ShaSpec,
    alignment_loss,
    alignment_pairs,
    domain_loss,
    fill_missing,
)
from robustfusion.model import MultimodalModel
from robustfusion.registry import METHODS
from robustfusion.types import Batch

SPEC = MethodSpec(
    modalities=("a", "b", "c"),
    feature_dims={"a": 4, "b": 3, "c": 5},
    num_classes=3,
    hidden_dim=8,
)


def _features(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(n, SPEC.feature_dims[m], generator=g) for m in SPEC.modalities}


def _present(*columns: list[bool]) -> dict[str, torch.Tensor]:
    return {m: torch.tensor(c) for m, c in zip(SPEC.modalities, columns, strict=True)}


def _batch(n: int, dims: dict[str, int] | None = None) -> Batch:
    dims = dims or {m: 2 for m in SPEC.modalities}
    return Batch(
        inputs={m: torch.ones(n, dims[m]) for m in SPEC.modalities},
        present={m: torch.ones(n, dtype=torch.bool) for m in SPEC.modalities},
        target=torch.zeros(n, dtype=torch.long),
        index=torch.arange(n),
    )


# ----------------------------------------------------------------- the formulas, by hand
def test_fill_is_the_mean_or_the_first_present_shared_feature() -> None:
    shared = torch.tensor(
        [
            [[1.0, 2.0], [3.0, 6.0], [5.0, -4.0]],
            [[1.0, 2.0], [3.0, 6.0], [5.0, -4.0]],
            [[1.0, 2.0], [3.0, 6.0], [5.0, -4.0]],
        ]
    )
    present = torch.tensor([[True, True, False], [False, True, True], [False, False, False]])
    # sample 0: (r_a + r_b)/2 = (2, 4); sample 1: (r_b + r_c)/2 = (4, 1); nothing present: 0
    assert torch.equal(
        fill_missing(shared, present, "mean"), torch.tensor([[2.0, 4.0], [4.0, 1.0], [0.0, 0.0]])
    )
    # the first present modality in modality order: a for sample 0, b for sample 1
    assert torch.equal(
        fill_missing(shared, present, "first"),
        torch.tensor([[1.0, 2.0], [3.0, 6.0], [0.0, 0.0]]),
    )


def test_alignment_pairs_cycle_and_all() -> None:
    assert alignment_pairs(2, "cycle") == [(0, 1)]
    assert alignment_pairs(3, "cycle") == [(0, 1), (1, 2), (2, 0)]
    # the authors' four MRI modalities: flair-t1, t1-t1ce, t1ce-t2, t2-flair
    assert alignment_pairs(4, "cycle") == [(0, 1), (1, 2), (2, 3), (3, 0)]
    assert alignment_pairs(4, "all") == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


def test_alignment_loss_by_hand_and_against_the_authors_l1() -> None:
    # two samples, three modalities, d = 2
    shared = torch.tensor(
        [
            [[0.0, 0.0], [1.0, 3.0], [2.0, 2.0]],
            [[1.0, 1.0], [1.0, 1.0], [4.0, 0.0]],
        ]
    )
    pairs = alignment_pairs(3, "cycle")
    # |a-b|, |b-c|, |c-a| per sample, mean over d:
    #   sample 0: (1+3)/2 = 2, (1+1)/2 = 1, (2+2)/2 = 2
    #   sample 1: 0,           (3+1)/2 = 2, (3+1)/2 = 2
    every = torch.ones(2, 3, dtype=torch.bool)
    expected = (2 + 0) / 2 + (1 + 2) / 2 + (2 + 2) / 2  # = 1 + 1.5 + 2
    assert float(alignment_loss(shared, every, pairs)) == pytest.approx(expected)
    # the authors' train_SS.py: nn.L1Loss() (mean over batch and features) per pair, summed
    l1 = nn.L1Loss()
    code = sum(l1(shared[:, i], shared[:, j]) for i, j in pairs)
    assert float(alignment_loss(shared, every, pairs)) == pytest.approx(float(code))
    # c absent in sample 0: pairs with c average over sample 1 only; (a, b) over both
    valid = torch.tensor([[True, True, False], [True, True, True]])
    assert float(alignment_loss(shared, valid, pairs)) == pytest.approx(1.0 + 2.0 + 2.0)
    # a pair with no sample where both are present adds nothing
    none_c = torch.tensor([[True, True, False], [True, True, False]])
    assert float(alignment_loss(shared, none_c, pairs)) == pytest.approx(1.0)


def test_domain_loss_by_hand_and_against_the_authors_cross_entropy() -> None:
    # M = 2: sample 0 logits for (modality 0, modality 1), sample 1 likewise
    logits = torch.tensor([[[2.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 3.0]]])
    # CE of row (logits, label): log(1 + exp(other - own))
    rows = [
        math.log(1 + math.exp(-2.0)),  # sample 0, modality 0
        math.log(2.0),  # sample 0, modality 1
        math.log(1 + math.exp(1.0)),  # sample 1, modality 0
        math.log(1 + math.exp(-2.0)),  # sample 1, modality 1
    ]
    every = torch.ones(2, 2, dtype=torch.bool)
    assert float(domain_loss(logits, every)) == pytest.approx(sum(rows) / 4)
    labels = torch.tensor([0, 1, 0, 1])  # the code's spec_labels for N*C rows
    code = F.cross_entropy(logits.reshape(4, 2), labels)
    assert float(domain_loss(logits, every)) == pytest.approx(float(code))
    valid = torch.tensor([[True, False], [True, True]])
    assert float(domain_loss(logits, valid)) == pytest.approx((rows[0] + rows[2] + rows[3]) / 3)


# ----------------------------------------------------------------- the model
def test_forward_fills_an_absent_modality_and_ignores_its_features() -> None:
    torch.manual_seed(0)
    for fill in ("mean", "first"):
        method = ShaSpec(SPEC, fill=fill).eval()
        features = _features(4)
        present = _present([True, False, True, True], [True, True, False, False], [True] * 4)
        out = method(features, present)
        shared = out.extras["shared"]
        specific = out.extras["specific"]
        assert shared.shape == specific.shape == (4, 3, 8)
        # the residual fusion h = r + W [r; s] for present modalities, the fill for absent ones
        h = shared + method.projection(torch.cat([shared, specific], dim=-1))
        mask = out.extras["present"]
        if fill == "mean":
            filler = (shared * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        else:
            filler = shared[torch.arange(4), mask.float().argmax(1)]
        # sample 1 misses a (filled from b and c, or from b), samples 2, 3 miss b
        h[1, 0] = filler[1]
        h[2, 1] = filler[2]
        h[3, 1] = filler[3]
        if fill == "first":
            assert torch.equal(filler[1], shared[1, 1])  # b: the first present after a
            assert torch.equal(filler[2], shared[2, 0])
        expected = method.classifier(h.reshape(4, -1))
        torch.testing.assert_close(out.logits, expected)
        # what an absent modality's encoder returns (zeroed input) does not reach the logits
        changed = dict(features)
        changed["a"] = features["a"].clone()
        changed["a"][1] = 100.0
        torch.testing.assert_close(method(changed, present).logits, out.logits)


def test_weights_are_uniform_over_present_modalities() -> None:
    method = ShaSpec(SPEC)
    present = _present([True, False, True], [True, True, False], [False, True, True])
    out = method(_features(3), present)
    expected = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]])
    torch.testing.assert_close(out.weights, expected)
    assert out.modalities == SPEC.modalities
    assert out.logits.shape == (3, 3)


def test_losses_are_weighted_and_skip_absent_modalities_unless_asked() -> None:
    torch.manual_seed(0)
    batch_present = _present([True, False, True], [True, True, True], [True, True, False])
    target = torch.tensor([0, 1, 2])
    batch = Batch(inputs=_features(3), present=batch_present, target=target, index=torch.arange(3))
    for aux in ("present", "all"):
        method = ShaSpec(SPEC, aux_losses=aux, alpha=0.5, beta=2.0).requires_grad_(False)
        out = method(_features(3), batch_present)
        terms = method.losses(out, batch)
        assert set(terms) == {"ce", "alignment", "domain"}
        mask = batch.present_matrix() if aux == "present" else torch.ones(3, 3, dtype=torch.bool)
        pairs = alignment_pairs(3, "cycle")
        assert float(terms["ce"]) == pytest.approx(float(F.cross_entropy(out.logits, target)))
        assert float(terms["alignment"]) == pytest.approx(
            0.5 * float(alignment_loss(out.extras["shared"], mask, pairs))
        )
        assert float(terms["domain"]) == pytest.approx(
            2.0 * float(domain_loss(out.extras["domain_logits"], mask))
        )
        # the features of an absent (zeroed) modality move the auxiliary losses only with "all"
        changed = _features(3)
        changed["a"][1] = 50.0
        moved = method.losses(method(changed, batch_present), batch)
        same = aux == "present"
        assert (float(moved["alignment"]) == pytest.approx(float(terms["alignment"]))) is same
        assert (float(moved["domain"]) == pytest.approx(float(terms["domain"]))) is same


def test_a_training_step_moves_every_part_and_learns_a_toy_task() -> None:
    torch.manual_seed(0)
    encoders = nn.ModuleDict(
        {m: nn.Sequential(nn.Linear(2, SPEC.feature_dims[m]), nn.ReLU()) for m in SPEC.modalities}
    )
    method = ShaSpec(SPEC, warmup=0.0)
    model = MultimodalModel(encoders, method)
    g = torch.Generator().manual_seed(1)
    n = 96
    target = torch.arange(n) % 3
    inputs = {
        m: torch.randn(n, 2, generator=g) * 0.3 + target.unsqueeze(1).float() * (i + 1)
        for i, m in enumerate(SPEC.modalities)
    }
    full = Batch(
        inputs=inputs,
        present={m: torch.ones(n, dtype=torch.bool) for m in SPEC.modalities},
        target=target,
        index=torch.arange(n),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    method.on_epoch_start(0, 10)
    first = None
    for step in range(60):
        batch = method.prepare_batch(full, training=True)
        terms = method.losses(model(batch), batch)
        loss = sum(terms.values())
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            first = float(loss.detach())
            for name in ("stems", "shared_trunk", "specific", "projection", "domain_classifier"):
                grads = [p.grad for p in getattr(method, name).parameters()]
                assert all(gr is not None and bool(gr.abs().sum() > 0) for gr in grads), name
            assert all(p.grad is not None for p in encoders.parameters())
        optimizer.step()
        method.on_epoch_start(step + 1, 100)
    assert float(loss.detach()) < first
    model.eval()
    with torch.no_grad():
        accuracy = (model(full).logits.argmax(1) == target).float().mean()
        # one modality absent everywhere: the fill keeps it working
        absent_a = full.replace(
            inputs={**inputs, "a": torch.zeros(n, 2)},
            present={**full.present, "a": torch.zeros(n, dtype=torch.bool)},
        )
        missing = (model(absent_a).logits.argmax(1) == target).float().mean()
    assert float(accuracy) > 0.9
    assert float(missing) > 0.9


def test_batch_size_one_trains_without_normalisation_trouble() -> None:
    method = ShaSpec(SPEC).train()
    out = method(_features(1), _present([True], [False], [True]))
    batch = Batch(
        inputs=_features(1),
        present=_present([True], [False], [True]),
        target=torch.zeros(1, dtype=torch.long),
        index=torch.arange(1),
    )
    sum(method.losses(out, batch).values()).backward()


# ----------------------------------------------------------------- missing-modality training
def test_subset_dropping_keeps_k_uniform_of_the_present_and_is_seeded() -> None:
    method = ShaSpec(SPEC, warmup=0.0)
    method.on_epoch_start(0, 10)
    out = method.prepare_batch(_batch(6000), training=True)
    present = out.present_matrix()
    kept = present.sum(1)
    assert int(kept.min()) >= 1
    for k in (1, 2, 3):  # k ~ U{1, 2, 3}
        assert abs(float((kept == k).float().mean()) - 1 / 3) < 0.03
    # every modality equally often dropped: P(dropped) = (2/3 + 1/3 + 0)/3 = 1/3
    for i in range(3):
        assert abs(float((~present[:, i]).float().mean()) - 1 / 3) < 0.03
    for i, m in enumerate(SPEC.modalities):
        assert bool((out.inputs[m][~present[:, i]] == 0).all())
        assert bool((out.inputs[m][present[:, i]] == 1).all())
    # deterministic, keyed on the sample index, new every epoch
    assert torch.equal(method.prepare_batch(_batch(6000), training=True).present_matrix(), present)
    perm = torch.randperm(6000, generator=torch.Generator().manual_seed(0))
    shuffled = _batch(6000).replace(index=torch.arange(6000)[perm])
    assert torch.equal(
        method.prepare_batch(shuffled, training=True).present_matrix(), present[perm]
    )
    method.on_epoch_start(1, 10)
    assert not torch.equal(
        method.prepare_batch(_batch(6000), training=True).present_matrix(), present
    )


def test_absent_stays_absent_and_evaluation_is_untouched() -> None:
    method = ShaSpec(SPEC, warmup=0.0)
    batch = _batch(500)
    assert method.prepare_batch(batch, training=False) is batch
    batch.present["a"][:] = False
    out = method.prepare_batch(batch, training=True)
    assert not bool(out.present["a"].any())
    assert bool(out.present_matrix().any(1).all())
    # two present modalities: k ~ U{1, 2}
    assert abs(float((out.present_matrix().sum(1) == 2).float().mean()) - 0.5) < 0.08


def test_warmup_trains_on_full_modalities_and_is_not_selectable() -> None:
    method = ShaSpec(SPEC, warmup=0.3)
    batch = _batch(50)
    method.on_epoch_start(2, 10)
    assert method.prepare_batch(batch, training=True) is batch
    assert not method.selectable_epoch(2, 10)
    method.on_epoch_start(3, 10)
    assert not bool(method.prepare_batch(batch, training=True).present_matrix().all())
    assert method.selectable_epoch(3, 10)
    assert ShaSpec(SPEC, warmup=0.9).selectable_epoch(9, 10)  # the last epoch always is


def test_independent_dropping_and_none() -> None:
    method = ShaSpec(SPEC, missing_training="independent", p=0.5, warmup=0.0)
    present = method.prepare_batch(_batch(4000), training=True).present_matrix()
    assert abs(float((~present).float().mean()) - (0.5 - 0.5**3 / 3)) < 0.03
    none = ShaSpec(SPEC, missing_training="none", warmup=0.0)
    batch = _batch(10)
    assert none.prepare_batch(batch, training=True) is batch


# ----------------------------------------------------------------- registry and options
def test_registered_and_options_validated() -> None:
    assert "shaspec" in METHODS.names()
    method = build_method("shaspec", SPEC, {"shaspec": {"fill": "first", "pairs": "all"}})
    assert isinstance(method, ShaSpec)
    assert method.pairs == alignment_pairs(3, "all")
    assert method.warmup == 0.3  # the authors' run.sh: 30 % of the epochs on full modalities
    from robustfusion.training.config import TrainConfig

    assert ShaSpec.training_defaults({}) == {"selection": "last"}  # their final model
    assert ShaSpec.training_defaults({"warmup": 0}) == {}
    resolved = TrainConfig(dataset="mfeat", method="shaspec", out="x").resolved()
    assert resolved.selection == "last"
    flags = TrainConfig().with_overrides(
        dataset="mfeat", method="shaspec", selection="best_val", out="x"
    )
    assert flags.resolved().selection == "best_val"  # a given setting wins
    bad = [
        {"fill": "zero"},
        {"aux_losses": "some"},
        {"pairs": "ring"},
        {"missing_training": "always"},
        {"alpha": -1.0},
        {"p": 1.0},
        {"warmup": 1.0},
        {"shared_dim": 0},
        {"no_such_option": 1},
    ]
    for options in bad:
        with pytest.raises(ConfigError):
            build_method("shaspec", SPEC, {"shaspec": options})
    one = MethodSpec(modalities=("a",), feature_dims={"a": 2}, num_classes=2)
    with pytest.raises(ConfigError):
        build_method("shaspec", one)


def test_two_modalities_and_shared_dim() -> None:
    spec = MethodSpec(modalities=("x", "y"), feature_dims={"x": 3, "y": 7}, num_classes=2)
    method = ShaSpec(spec, shared_dim=5)
    out = method(
        {"x": torch.randn(4, 3), "y": torch.randn(4, 7)},
        {
            "x": torch.tensor([True, True, False, True]),
            "y": torch.tensor([True, False, True, True]),
        },
    )
    assert out.extras["shared"].shape == (4, 2, 5)
    assert out.extras["domain_logits"].shape == (4, 2, 2)
    assert method.pairs == [(0, 1)]


def test_trains_and_evaluates_through_the_project_trainer(tiny_npz: Path, tmp_path: Path) -> None:
    from robustfusion.evaluation.evaluate import evaluate_model
    from robustfusion.training.config import TrainConfig
    from robustfusion.training.run import load_run, train

    config = TrainConfig(
        data=str(tiny_npz),
        method="shaspec",
        epochs=4,
        batch_size=16,
        lr=0.01,
        hidden_dim=16,
        feature_dim=16,
        out=str(tmp_path / "run"),
    )
    metrics = train(config, progress=False)
    assert metrics["accuracy"] > 0.6  # 3 classes, 54 training samples
    model, splits, _ = load_run(tmp_path / "run")
    missing = evaluate_model(
        model, splits.test, splits.info, corruption="missing", severity=0.5, target="all"
    )
    assert missing["accuracy"] > 0.5
