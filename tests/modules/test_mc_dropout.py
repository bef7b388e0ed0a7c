"""MC dropout: explicit masks, activity at evaluation, batched pass == loop of T passes."""

from __future__ import annotations

import pytest
import torch

from robustfusion.modules.mc_dropout import (
    MCDropout,
    MCDropoutHead,
    StackedHeads,
    dropped_indices,
)


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


def _head(in_dim: int = 12, shared: int = 8, classes: int = 5, p: float = 0.3) -> MCDropoutHead:
    """A head whose LayerNorm affine is not the identity (so that folding it is tested)."""
    head = MCDropoutHead(in_dim, shared, classes, p=p).eval()
    with torch.no_grad():
        head.norm.weight.normal_()
        head.norm.bias.normal_()
    return head


def _loop(head: MCDropoutHead, x: torch.Tensor, masks: tuple, per_pass: bool) -> torch.Tensor:
    return torch.stack(
        [
            head(x[t] if per_pass else x, (masks[0][t], masks[1][t]))[1]
            for t in range(masks[0].shape[0])
        ]
    )


@pytest.mark.parametrize("p", [0.1, 0.3, 0.6])
def test_batched_mc_pass_equals_loop_under_same_masks(p: float) -> None:
    """Shared input (sparse correction, folded LayerNorm) and per-pass inputs (masked weights)
    both give the logits of a loop of single passes under the same masks."""
    torch.manual_seed(0)
    head = _head(p=p)
    x = torch.randn(6, 12)
    masks = head.sample_masks(10, generator=torch.Generator().manual_seed(1))
    assert masks[0].shape == (10, 12) and masks[1].shape == (10, 8)
    logits = head.mc_logits(x, 10, masks)
    assert logits.shape == (10, 6, 5)
    torch.testing.assert_close(logits, _loop(head, x, masks, False), rtol=1e-4, atol=1e-5)
    per_pass = torch.randn(10, 6, 12)
    torch.testing.assert_close(
        head.mc_logits(per_pass, 10, masks),
        _loop(head, per_pass, masks, True),
        rtol=1e-4,
        atol=1e-5,
    )
    # the passes really differ from one another (dropout is active at evaluation)
    assert not torch.allclose(logits[0], logits[1])


def test_mc_pass_with_nothing_dropped_is_the_deterministic_head() -> None:
    torch.manual_seed(0)
    head = _head()
    x = torch.randn(4, 12)
    keep = (torch.ones(3, 12, dtype=torch.bool), torch.ones(3, 8, dtype=torch.bool))
    logits = head.mc_logits(x, 3, keep)
    expected = head.classifier(head.norm(head.projector(x / 0.7)) / 0.7)
    torch.testing.assert_close(logits, expected.expand(3, -1, -1), rtol=1e-4, atol=1e-5)


def test_masks_are_shared_by_the_batch_so_a_sample_does_not_depend_on_its_batch() -> None:
    torch.manual_seed(0)
    head = _head()
    x = torch.randn(5, 12)
    masks = head.sample_masks(8, generator=torch.Generator().manual_seed(2))
    whole = head.mc_logits(x, 8, masks)
    alone = head.mc_logits(x[2:3], 8, masks)
    torch.testing.assert_close(whole[:, 2:3], alone, rtol=1e-4, atol=1e-5)


def test_stacked_heads_equal_the_heads_one_by_one() -> None:
    torch.manual_seed(0)
    heads = [_head() for _ in range(3)]
    stacked = StackedHeads.of(heads)
    x = torch.randn(3, 7, 12)
    z, logits = stacked.forward(x)
    for i, head in enumerate(heads):
        z_i, logits_i = head(x[i])
        torch.testing.assert_close(z[i], z_i, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(logits[i], logits_i, rtol=1e-5, atol=1e-6)
    masks = stacked.sample_masks(4, generator=torch.Generator().manual_seed(0))
    mc = stacked.mc_logits(x, masks)
    for i, head in enumerate(heads):
        expected = head.mc_logits(x[i], 4, (masks[0][i], masks[1][i]))
        torch.testing.assert_close(mc[i], expected, rtol=1e-4, atol=1e-5)
    # the dropped indices computed once (masks reused over batches) give the same passes
    assert torch.equal(stacked.mc_logits(x, masks, dropped=dropped_indices(masks)), mc)
    # training mode drops inputs: the outputs change, and gradients reach every head
    z_train, logits_train = stacked.forward(x, dropout=True)
    assert not torch.allclose(logits_train, logits)
    logits_train.sum().backward()
    assert all(h.projector.weight.grad is not None for h in heads)
    with pytest.raises(ValueError, match="equal shapes"):
        StackedHeads.of([_head(), _head(in_dim=6)])


def test_mc_pass_without_masks_is_stochastic_and_seedable() -> None:
    torch.manual_seed(0)
    head = MCDropoutHead(4, 4, 3, p=0.5).eval()
    x = torch.randn(2, 4)
    a = head.mc_logits(x, 5, generator=torch.Generator().manual_seed(7))
    b = head.mc_logits(x, 5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert a.std(dim=0).sum() > 0
