"""Tests of the authors' linear UDML classifier over concatenated weighted features."""

from __future__ import annotations

import pytest
import torch

from robustfusion.modules.linear_head import ConcatLinearHead


@pytest.mark.parametrize("sizes", [(3, 2, 4), (4, 4, 4)])
def test_fused_and_solo_logits_are_one_linear_layer_with_zeroed_blocks(
    sizes: tuple[int, int, int],
) -> None:
    torch.manual_seed(0)
    dims = dict(zip("abc", sizes, strict=True))
    head = ConcatLinearHead(dims, 5)
    features = {m: torch.randn(6, d) for m, d in dims.items()}
    present = {m: torch.ones(6, dtype=torch.bool) for m in dims}
    present["b"][:2] = False
    weights = torch.rand(6, 3) + 1.0
    fused, solo = head.with_solo(features, present, weights)
    scaled = [
        features[m] * (weights[:, j : j + 1] * present[m].unsqueeze(1)) for j, m in enumerate(dims)
    ]
    assert torch.allclose(fused, head.linear(torch.cat(scaled, dim=1)), atol=1e-6)
    assert torch.allclose(head(features, present, weights), fused, atol=1e-6)
    for j in range(3):
        only = [s if k == j else torch.zeros_like(s) for k, s in enumerate(scaled)]
        assert torch.allclose(solo[j], head.linear(torch.cat(only, dim=1)), atol=1e-6)
    # A weight scales that modality's share of the logits: W_m (s z) = s W_m z.
    bias = head.linear.bias
    doubled = head.with_solo(features, present, weights * torch.tensor([2.0, 1.0, 1.0]))[1]
    assert torch.allclose(doubled[0] - bias, 2 * (solo[0] - bias), atol=1e-5)
    # Absent modalities enter as zeros: their solo logits are the bias.
    assert torch.allclose(solo[1, :2], bias.expand(2, 5), atol=1e-6)
    # The contributions W_j s_j z_j are the solo logits without the bias (OGM-GE's slices).
    assert torch.allclose(head.contributions(features, present, weights) + bias, solo, atol=1e-6)
