"""Modality dropout: seeded per sample and epoch, never drops everything, composes."""

from __future__ import annotations

import torch

from robustfusion.methods.base import MethodSpec, build_method
from robustfusion.types import Batch

SPEC = MethodSpec(modalities=("a", "b", "c"), feature_dims={"a": 2, "b": 2, "c": 2}, num_classes=2)


def _batch(n: int) -> Batch:
    return Batch(
        inputs={m: torch.ones(n, 2) for m in SPEC.modalities},
        present={m: torch.ones(n, dtype=torch.bool) for m in SPEC.modalities},
        target=torch.zeros(n, dtype=torch.long),
        index=torch.arange(n),
    )


def test_drop_rate_determinism_and_no_sample_left_empty() -> None:
    method = build_method("modality_dropout", SPEC, {"modality_dropout": {"p": 0.5}})
    method.on_epoch_start(0, 10)
    out = method.prepare_batch(_batch(4000), training=True)
    present = out.present_matrix()
    assert bool(present.any(1).all())
    # P(dropped) = p, minus the rescued all-dropped samples (p^3 of them, one modality each).
    expected = 0.5 - 0.5**3 / 3
    assert abs(float((~present).float().mean()) - expected) < 0.02
    for i, m in enumerate(SPEC.modalities):
        assert bool((out.inputs[m][~present[:, i]] == 0).all())
        assert bool((out.inputs[m][present[:, i]] == 1).all())
    again = method.prepare_batch(_batch(4000), training=True)
    assert torch.equal(again.present_matrix(), present)
    # A sample's draw depends on its index, not on its position in the batch.
    shuffled = _batch(4000)
    perm = torch.randperm(4000, generator=torch.Generator().manual_seed(0))
    shuffled = shuffled.replace(index=shuffled.index[perm])
    assert torch.equal(
        method.prepare_batch(shuffled, training=True).present_matrix(), present[perm]
    )
    # ... and not on the batch size
    small = _batch(4000)
    small = small.replace(
        inputs={m: x[:37] for m, x in small.inputs.items()},
        present={m: p[:37] for m, p in small.present.items()},
        target=small.target[:37],
        index=small.index[:37],
    )
    assert torch.equal(method.prepare_batch(small, training=True).present_matrix(), present[:37])
    method.on_epoch_start(1, 10)
    assert not torch.equal(
        method.prepare_batch(_batch(4000), training=True).present_matrix(), present
    )


def test_evaluation_is_untouched_and_absent_stays_absent() -> None:
    method = build_method("modality_dropout", SPEC)
    batch = _batch(50)
    assert method.prepare_batch(batch, training=False) is batch
    batch.present["a"][:] = False
    out = method.prepare_batch(batch, training=True)
    assert not bool(out.present["a"].any())
    assert bool(out.present_matrix().any(1).all())


def test_around_udml_it_keeps_udmls_selection_rule_and_every_other_hook() -> None:
    """``modality_dropout+udml`` selects models as UDML does (never in its warm-up phases), and
    its schedule, recipe, noise injection, losses and weight swaps are UDML's."""
    from robustfusion.methods.udml import UDML
    from robustfusion.training.config import TrainConfig

    spec = MethodSpec(
        modalities=("a", "b"),
        feature_dims={"a": 4, "b": 4},
        num_classes=2,
        input_shapes={"a": (4,), "b": (4,)},
    )
    torch.manual_seed(0)
    alone = build_method("udml", spec)
    torch.manual_seed(0)
    wrapped = build_method("modality_dropout+udml", spec, {"modality_dropout": {"p": 0.0}})
    assert isinstance(wrapped.inner, UDML)
    assert wrapped.wants_spatial_features and wrapped.has_dynamic_weights
    for hook in ("selectable_epoch", "lr_scale"):
        assert [getattr(wrapped, hook)(e, 10) for e in range(10)] == [
            getattr(alone, hook)(e, 10) for e in range(10)
        ]
    assert not wrapped.selectable_epoch(5, 10) and wrapped.selectable_epoch(6, 10)
    recipe = TrainConfig(
        method="modality_dropout+udml", method_options={"udml": {"preset": "paper"}}
    ).recipe()
    assert recipe["optimizer"] == "sgd" and recipe["gradient_clip_val"] == 40.0
    batch = Batch(
        inputs={m: torch.randn(6, 4) for m in spec.modalities},
        present={m: torch.ones(6, dtype=torch.bool) for m in spec.modalities},
        target=torch.arange(6) % 2,
        index=torch.arange(6),
    )
    for method in (alone, wrapped):
        method.on_epoch_start(8, 10)
    noisy = wrapped.prepare_batch(batch, training=True)  # p = 0: only UDML's noise injection
    expected = alone.prepare_batch(batch, training=True)
    for m in spec.modalities:
        torch.testing.assert_close(noisy.inputs[m], expected.inputs[m])
        torch.testing.assert_close(noisy.noise_level[m], expected.noise_level[m])
    out = wrapped(dict(noisy.inputs), noisy.present)
    assert set(wrapped.losses(out, noisy)) == set(
        alone.losses(alone(dict(noisy.inputs), noisy.present), noisy)
    )
    assert set(wrapped.logged_values()) == set(alone.logged_values())
    wrapped.eval()
    wrapped.set_weight_mode("uniform")
    assert wrapped.inner.effective_weight_mode() == "uniform"
    torch.testing.assert_close(
        wrapped(dict(batch.inputs), batch.present).weights, torch.full((6, 2), 0.5)
    )


def test_the_run_seed_keys_the_draws_unless_the_option_overrides_it() -> None:
    from dataclasses import replace

    from robustfusion.methods import build_method

    base = MethodSpec(("a", "b", "c"), {"a": 4, "b": 4, "c": 4}, 3)
    assert build_method("modality_dropout", replace(base, seed=7)).seed == 7
    assert (
        build_method(
            "modality_dropout", replace(base, seed=7), {"modality_dropout": {"seed": 2}}
        ).seed
        == 2
    )
    assert build_method("udml", replace(base, seed=5)).seed == 5
    assert build_method("dms", replace(base, seed=3)).seed == 3
