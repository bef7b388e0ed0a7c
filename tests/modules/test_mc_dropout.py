"""MC dropout: explicit masks, activity at evaluation, batched pass == loop of T passes."""

from __future__ import annotations

import pytest
import torch

from robustfusion.modules.mc_dropout import MCDropout, MCDropoutHead


def test_dropout_is_identity_at_eval_unless_active() -> None:
    torch.manual_seed(0)
    layer = MCDropout(0.5).eval()
    x = torch.randn(4, 16)
    assert torch.equal(layer(x), x)
    dropped = layer(x, active=True)
    zeros = dropped == 0
    assert zeros.any() and not zeros.all()
    assert torch.allclose(dropped[~zeros], 2 * x[~zeros])


def test_explicit_mask_is_used_and_generator_is_reproducible() -> None:
    layer = MCDropout(0.25)
    x = torch.ones(3, 8)
    mask = torch.zeros(3, 8, dtype=torch.bool)
    mask[:, :2] = True
    out = layer(x, mask)
    assert torch.allclose(out[:, :2], torch.full((3, 2), 1 / 0.75))
    assert torch.equal(out[:, 2:], torch.zeros(3, 6))
    first = layer.sample_mask((100,), generator=torch.Generator().manual_seed(3))
    second = layer.sample_mask((100,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, second)
    assert first.dtype == torch.bool
    assert 0.6 < float(first.float().mean()) < 0.9


def test_rejects_invalid_probability() -> None:
    with pytest.raises(ValueError, match="dropout probability"):
        MCDropout(1.0)


def test_batched_mc_pass_equals_loop_under_same_masks() -> None:
    torch.manual_seed(0)
    head = MCDropoutHead(in_dim=12, shared_dim=8, num_classes=5, p=0.3).eval()
    x = torch.randn(6, 12)
    masks = head.sample_masks(10, 6, generator=torch.Generator().manual_seed(1))
    z, logits = head.mc_forward(x, 10, masks)
    assert z.shape == (10, 6, 8) and logits.shape == (10, 6, 5)
    for t in range(10):
        z_t, logits_t = head(x, (masks[0][t], masks[1][t]))
        torch.testing.assert_close(z[t], z_t, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(logits[t], logits_t, rtol=1e-5, atol=1e-6)
    # the passes really differ from one another (dropout is active at evaluation)
    assert not torch.allclose(logits[0], logits[1])


def test_mc_pass_without_masks_is_stochastic_and_seedable() -> None:
    torch.manual_seed(0)
    head = MCDropoutHead(4, 4, 3, p=0.5).eval()
    x = torch.randn(2, 4)
    a = head.mc_forward(x, 5, generator=torch.Generator().manual_seed(7))[1]
    b = head.mc_forward(x, 5, generator=torch.Generator().manual_seed(7))[1]
    assert torch.equal(a, b)
    assert a.std(dim=0).sum() > 0
