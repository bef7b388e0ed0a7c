"""Tests of the gradient-scaling autograd function (modules/grad_scale.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustfusion.modules.grad_scale import grad_scale, scale_token_groups


def test_grad_scale_is_identity_forward_and_scales_backward() -> None:
    x = torch.randn(3, 4, requires_grad=True)
    y = grad_scale(x, 0.25)
    torch.testing.assert_close(y, x)
    (y * torch.arange(12.0).reshape(3, 4)).sum().backward()
    torch.testing.assert_close(x.grad, 0.25 * torch.arange(12.0).reshape(3, 4))


def test_grad_scale_accepts_a_tensor_factor_without_differentiating_it() -> None:
    x = torch.ones(2, requires_grad=True)
    k = torch.tensor(1.5, requires_grad=True)
    grad_scale(x, k).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((2,), 1.5))
    assert k.grad is None


def test_scale_token_groups_scales_each_group_and_leaves_cls_alone() -> None:
    tokens = torch.randn(2, 7, 3, requires_grad=True)
    groups = {"image": slice(1, 4), "audio": slice(4, 7)}
    out = scale_token_groups(tokens, groups, {"image": 2.0, "audio": torch.tensor(0.5)})
    torch.testing.assert_close(out, tokens)
    out.sum().backward()
    expected = torch.tensor([1.0, 2.0, 2.0, 2.0, 0.5, 0.5, 0.5])
    torch.testing.assert_close(tokens.grad, expected[None, :, None].expand(2, 7, 3))


def test_overlapping_groups_are_rejected() -> None:
    with pytest.raises(ValueError, match="two modality groups"):
        scale_token_groups(torch.zeros(1, 4, 2), {"a": slice(0, 3), "b": slice(2, 4)}, {})


def test_shared_transformer_only_the_named_tokenizer_is_scaled() -> None:
    """A tiny ViT-style model: per-modality patch embeddings, one shared transformer."""

    def build() -> nn.ModuleDict:
        torch.manual_seed(0)
        return nn.ModuleDict(
            {
                "embed_a": nn.Linear(5, 8),
                "embed_b": nn.Linear(6, 8),
                "shared": nn.TransformerEncoder(
                    nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), 1
                ),
                "head": nn.Linear(8, 3),
            }
        )

    g = torch.Generator().manual_seed(1)
    xa, xb = torch.randn(4, 3, 5, generator=g), torch.randn(4, 2, 6, generator=g)
    target = torch.tensor([0, 1, 2, 0])

    def grads(scales: dict[str, float]) -> dict[str, torch.Tensor]:
        model = build()
        tokens = torch.cat([model["embed_a"](xa), model["embed_b"](xb)], dim=1)
        tokens = scale_token_groups(tokens, {"a": slice(0, 3), "b": slice(3, 5)}, scales)
        logits = model["head"](model["shared"](tokens).mean(1))
        nn.functional.cross_entropy(logits, target).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    base, scaled = grads({}), grads({"a": 1.4, "b": 0.6})
    for name, grad in base.items():
        factor = 1.4 if name.startswith("embed_a") else 0.6 if name.startswith("embed_b") else 1.0
        torch.testing.assert_close(scaled[name], factor * grad, msg=name)
