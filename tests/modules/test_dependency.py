"""Tests of UDML's modality dependency (per-sample values and the moving-average tracker)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robustfusion.modules.dependency import (
    DependencyTracker,
    dependency_from_solo,
    per_sample_dependency,
    solo_logits,
)
from robustfusion.modules.fusion import build_fusion


@pytest.mark.parametrize("fusion", ["concat", "sum", "attention", "gated"])
def test_per_sample_dependency_is_summed_abs_logits_with_other_modalities_absent(
    fusion: str,
) -> None:
    torch.manual_seed(0)
    dims = {"a": 4, "b": 3, "c": 5}
    head = build_fusion(fusion, dims, 8)
    classifier = torch.nn.Linear(8, 3)

    def logits(features, present, weights):  # type: ignore[no-untyped-def]
        return classifier(head(features, present, weights))

    features = {m: torch.randn(6, d) for m, d in dims.items()}
    present = {m: torch.ones(6, dtype=torch.bool) for m in dims}
    present["b"][1] = False
    weights = torch.full((6, 3), 2.0)
    alpha = per_sample_dependency(logits, features, present, tuple(dims), weights)
    assert alpha.shape == (6, 3)
    for j, m in enumerate(dims):
        rows = present[m].nonzero().flatten()
        solo = {k: (present[k][rows] & (k == m)) for k in dims}
        expected = logits({k: f[rows] for k, f in features.items()}, solo, weights[rows])
        # The authors' calculate_a: |logits| summed over classes (then averaged over the batch).
        assert torch.allclose(alpha[rows, j], expected.abs().sum(dim=1), atol=1e-5)
    assert float(alpha[1, 1]) == 0.0
    assert not alpha.requires_grad


@pytest.mark.parametrize("fusion", ["concat", "sum", "attention", "gated"])
def test_solo_logits_come_with_the_fused_logits_and_gradients(fusion: str) -> None:
    torch.manual_seed(0)
    dims = {"a": 4, "b": 4, "c": 3}
    head = build_fusion(fusion, dims, 8)
    classifier = torch.nn.Linear(8, 2)

    def logits(features, present, weights):  # type: ignore[no-untyped-def]
        return classifier(head(features, present, weights))

    features = {m: torch.randn(5, d, requires_grad=True) for m, d in dims.items()}
    present = {m: torch.ones(5, dtype=torch.bool) for m in dims}
    present["c"][0] = False
    weights = torch.rand(5, 3) + 1
    fused, solo = solo_logits(logits, features, present, tuple(dims), weights, include_fused=True)
    assert fused is not None and solo.shape == (3, 5, 2)
    assert torch.allclose(fused, logits(features, present, weights), atol=1e-5)
    for j, m in enumerate(dims):
        rows = present[m].nonzero().flatten()
        only = {k: present[k][rows] & (k == m) for k in dims}
        direct = logits({k: f[rows] for k, f in features.items()}, only, weights[rows])
        assert torch.allclose(solo[j, rows], direct, atol=1e-5)
    assert float(solo[2, 0].detach().abs().sum()) == 0.0  # c is absent in sample 0
    solo[0].sum().backward()  # the unimodal loss trains the shared head and modality a only
    assert features["a"].grad is not None and float(features["a"].grad.abs().sum()) > 0
    assert features["b"].grad is None or float(features["b"].grad.abs().sum()) == 0.0
    mask = torch.stack([present[m] for m in dims], dim=1)
    alpha = dependency_from_solo(solo, mask)
    assert alpha.shape == (5, 3) and not alpha.requires_grad
    assert torch.allclose(alpha, (solo.abs().sum(dim=2).t() * mask).detach())


def test_tracker_with_momentum_zero_keeps_the_last_batch() -> None:
    tracker = DependencyTracker(2, momentum=0.0)
    seen = torch.ones(2, 2, dtype=torch.bool)
    tracker.update(torch.tensor([[2.0, 8.0], [4.0, 2.0]]), seen)
    tracker.update(torch.tensor([[1.0, 1.0], [3.0, 5.0]]), seen)
    assert torch.allclose(tracker.alpha, torch.tensor([2.0, 3.0]))


def test_tracker_sets_then_blends_and_skips_unseen_modalities() -> None:
    tracker = DependencyTracker(2, momentum=0.75)
    seen = torch.tensor([[True, True], [True, False]])
    tracker.update(torch.tensor([[2.0, 8.0], [4.0, 100.0]]), seen)
    assert torch.allclose(tracker.alpha, torch.tensor([3.0, 8.0]))
    tracker.update(torch.tensor([[7.0, 0.0]]), torch.tensor([[True, False]]))
    assert torch.allclose(tracker.alpha, torch.tensor([0.75 * 3.0 + 0.25 * 7.0, 8.0]))
    state = tracker.state_dict()
    assert set(state) == {"alpha", "initialised"}
    fresh = DependencyTracker(2)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.alpha, tracker.alpha)


def test_tracker_first_value_waits_for_a_modality_to_be_seen() -> None:
    tracker = DependencyTracker(2, momentum=0.5)
    tracker.update(torch.tensor([[2.0, 0.0]]), torch.tensor([[True, False]]))
    tracker.update(torch.tensor([[2.0, 6.0]]), torch.tensor([[True, True]]))
    assert torch.allclose(tracker.alpha, torch.tensor([2.0, 6.0]))
    with pytest.raises(ValueError, match="momentum"):
        DependencyTracker(2, momentum=1.0)


_WORKER = """
import json, sys
import torch
import torch.distributed as dist
from robustfusion.modules.dependency import DependencyTracker

rank, path = int(sys.argv[1]), sys.argv[2]
torch.set_num_threads(1)
dist.init_process_group("gloo", init_method="file://" + path, rank=rank, world_size=2)
tracker = DependencyTracker(2, momentum=0.0)
# Rank 0 sees modality 0 only (value 1); rank 1 sees both (values 3 and 10).
if rank == 0:
    tracker.update(torch.tensor([[1.0, 0.0]]), torch.tensor([[True, False]]))
else:
    tracker.update(torch.tensor([[3.0, 10.0]]), torch.tensor([[True, True]]))
print(json.dumps(tracker.alpha.tolist()))
dist.destroy_process_group()
"""


def test_tracker_is_all_reduced_across_processes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(rank), str(store)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    # Sample-weighted mean over both processes: modality 0 (1 + 3) / 2, modality 1 seen once.
    assert results[0] == results[1] == pytest.approx([2.0, 10.0])
