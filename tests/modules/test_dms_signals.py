"""DMS signals: confidence, MC uncertainty and consistency on hand-checked values."""

from __future__ import annotations

import math

import torch

from robustfusion.modules.dms_signals import (
    mc_dropout_uncertainty,
    normalised_entropy_confidence,
    semantic_consistency,
)


def test_confidence_is_zero_for_uniform_and_near_one_for_peaked() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [50.0, 0.0, 0.0, 0.0]])
    c = normalised_entropy_confidence(logits)
    assert abs(float(c[0])) < 1e-6
    assert float(c[1]) > 0.999
    # two equally likely classes out of four: H = log 2, so c = 1 - log2/log4 = 0.5
    half = torch.tensor([[0.0, 0.0, -1e4, -1e4]])
    assert math.isclose(float(normalised_entropy_confidence(half)), 0.5, abs_tol=1e-5)


def test_uncertainty_is_zero_when_passes_agree_and_one_for_maximal_disagreement() -> None:
    same = torch.randn(1, 3, 5).expand(10, 3, 5)
    assert torch.allclose(mc_dropout_uncertainty(same), torch.zeros(3), atol=1e-7)
    # two classes, half the passes certain of one, half of the other: Var = 0.25 for each class
    flip = torch.tensor([[100.0, -100.0], [-100.0, 100.0]]).repeat(5, 1).unsqueeze(1)
    assert torch.allclose(mc_dropout_uncertainty(flip), torch.ones(1))


def test_consistency_of_aligned_opposite_and_absent_modalities() -> None:
    v = torch.tensor([1.0, 0.0, 0.0])
    z = torch.stack([v, 2 * v, -v]).unsqueeze(0)  # [1, 3, 3]
    present = torch.ones(1, 3, dtype=torch.bool)
    s = semantic_consistency(z, present)[0]
    # modality 0: (1 + 1)/2 with modality 1 and (1 - 1)/2 with modality 2 -> 0.5
    assert torch.allclose(s, torch.tensor([0.5, 0.5, 0.0]))
    # the opposite modality absent: the first two agree fully, the absent one gets 0
    s = semantic_consistency(z, torch.tensor([[True, True, False]]))[0]
    assert torch.allclose(s, torch.tensor([1.0, 1.0, 0.0]))
    # a modality alone gets the neutral value
    s = semantic_consistency(z, torch.tensor([[True, False, False]]))[0]
    assert torch.allclose(s, torch.tensor([0.5, 0.0, 0.0]))
