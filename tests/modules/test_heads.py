"""Unimodal heads: the stacked (batched) heads equal one linear layer per modality."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from robustfusion.modules.heads import StackedUnimodalHeads, UnimodalHeads


def test_stacked_heads_equal_separate_linear_heads_in_modality_order() -> None:
    torch.manual_seed(0)
    dims = {"a": 5, "b": 3, "c": 5}  # two sizes: two parameter groups
    stacked = StackedUnimodalHeads(dims, num_classes=4)
    assert len(stacked.weights) == 2 and stacked.weights[0].shape == (2, 4, 6)  # bias column
    features = {m: torch.randn(6, d) for m, d in dims.items()}
    logits = stacked(features)
    assert logits.shape == (3, 6, 4)
    for i, m in enumerate(dims):
        torch.testing.assert_close(logits[i], F.linear(features[m], *stacked.head(m)))
    # Gradients reach each head's slice only through its own modality.
    logits[1].sum().backward()
    assert float(stacked.weights[1].grad.abs().sum()) > 0
    assert float(stacked.weights[0].grad.abs().sum()) == 0


def test_stacked_heads_start_like_nn_linear_and_load_separate_heads() -> None:
    torch.manual_seed(1)
    stacked = StackedUnimodalHeads({"a": 100, "b": 100}, num_classes=50)
    bound = 1 / 100**0.5
    weight = stacked.head("a")[0].detach()
    assert float(weight.abs().max()) <= bound
    assert float(weight.std()) > 0.5 * bound / 3**0.5
    torch.manual_seed(1)  # the same draws in the same order as one nn.Linear per modality
    separate = UnimodalHeads({"a": 100, "b": 100}, num_classes=50)
    for m in ("a", "b"):
        torch.testing.assert_close(stacked.head(m)[0], separate.heads[m].weight)
        torch.testing.assert_close(stacked.head(m)[1], separate.heads[m].bias)
    separate = UnimodalHeads({"a": 100, "b": 100}, num_classes=50)
    stacked.load_state_dict(separate.state_dict())
    x = torch.randn(2, 100)
    torch.testing.assert_close(stacked({"a": x, "b": x})[1], separate.heads["b"](x))
