"""DMS signals: confidence, MC uncertainty and consistency on hand-checked values."""

from __future__ import annotations

import math

import torch

from robustfusion.modules.dms_signals import (
    CONFIDENCES,
    entropy_confidence,
    mc_dropout_uncertainty,
    normalised_entropy_confidence,
    prediction_agreement,
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


def test_paper_confidence_is_one_minus_the_entropy_in_nats() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [50.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1e4, -1e4]])
    c = entropy_confidence(logits)
    torch.testing.assert_close(c, torch.tensor([1 - math.log(4), 1.0, 1 - math.log(2)]))
    # the normalised option divides the entropy by log K
    torch.testing.assert_close(
        CONFIDENCES["normalised"](logits), torch.tensor([0.0, 1.0, 0.5]), atol=1e-5, rtol=0
    )
    assert CONFIDENCES["entropy"] is entropy_confidence


def _logits_of(probs: list[list[float]]) -> torch.Tensor:
    return torch.tensor(probs).log()


def test_agreement_favours_the_clean_modality_when_two_disagree() -> None:
    """M = 2: a peaked (clean) prediction against a diffuse (corrupted) one."""
    clean = [0.97, 0.01, 0.01, 0.01]
    diffuse = [0.25, 0.25, 0.25, 0.25]
    logits = torch.stack([_logits_of([clean, diffuse])])  # [1, 2, 4]
    present = torch.ones(1, 2, dtype=torch.bool)
    s = prediction_agreement(logits, present)[0]
    assert float(s[0]) > float(s[1])
    # exp(-KL(p_m || p_other)) by hand
    p, q = torch.tensor(clean), torch.tensor(diffuse)
    torch.testing.assert_close(s[0], torch.exp(-(p * (p / q).log()).sum()))
    torch.testing.assert_close(s[1], torch.exp(-(q * (q / p).log()).sum()))
    # identical predictions agree fully; the cosine form is equal for both when M = 2
    same = torch.stack([_logits_of([clean, clean])])
    torch.testing.assert_close(prediction_agreement(same, present)[0], torch.ones(2))
    z = torch.randn(1, 2, 5)
    cosine = semantic_consistency(z, present)[0]
    assert torch.allclose(cosine[0], cosine[1])


def test_agreement_uses_the_mean_of_the_present_others_and_handles_absent_ones() -> None:
    a, b, c = [0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3]
    logits = torch.stack([_logits_of([a, b, c])])
    present = torch.tensor([[True, True, False]])
    s = prediction_agreement(logits, present)[0]
    p, q = torch.tensor(a), torch.tensor(b)
    torch.testing.assert_close(s[0], torch.exp(-(p * (p / q).log()).sum()))
    assert float(s[2]) == 0.0  # absent
    everyone = prediction_agreement(logits, torch.ones(1, 3, dtype=torch.bool))[0]
    others = (torch.tensor(b) + torch.tensor(c)) / 2
    torch.testing.assert_close(everyone[0], torch.exp(-(p * (p / others).log()).sum()))
    alone = prediction_agreement(logits, torch.tensor([[False, True, False]]))[0]
    torch.testing.assert_close(alone, torch.tensor([0.0, 0.5, 0.0]))


def test_uncertainty_reads_the_classes_on_any_axis() -> None:
    logits = torch.randn(6, 3, 5, 4)  # [T, B, K, X]
    moved = logits.movedim(2, -1)  # [T, B, X, K]
    torch.testing.assert_close(mc_dropout_uncertainty(logits, dim=2), mc_dropout_uncertainty(moved))
    torch.testing.assert_close(
        mc_dropout_uncertainty(logits, dim=-2), mc_dropout_uncertainty(moved, dim=-1)
    )
