import pytest
import torch

from robustfusion.errors import DataError
from robustfusion.modules.fusion import build_fusion
from robustfusion.registry import FUSIONS

DIMS = {"a": 6, "b": 4, "c": 5}


def features(batch: int = 5) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {m: torch.randn(batch, d, generator=generator) for m, d in DIMS.items()}


def all_present(batch: int = 5) -> dict[str, torch.Tensor]:
    return {m: torch.ones(batch, dtype=torch.bool) for m in DIMS}


@pytest.mark.parametrize("name", ["concat", "sum", "attention", "gated"])
def test_output_shape_and_gradients(name: str) -> None:
    torch.manual_seed(0)
    fusion = build_fusion(name, DIMS, 16)
    feats = {m: f.requires_grad_() for m, f in features().items()}
    out = fusion(feats, all_present())
    assert out.shape == (5, 16)
    out.sum().backward()
    assert all(f.grad is not None for f in feats.values())


@pytest.mark.parametrize("name", ["concat", "sum", "attention", "gated"])
def test_absent_modality_content_is_ignored(name: str) -> None:
    torch.manual_seed(0)
    fusion = build_fusion(name, DIMS, 16).eval()
    present = all_present()
    present["b"][:] = False
    feats = features()
    other = dict(feats, b=feats["b"] * 100 + 7)
    assert torch.allclose(fusion(feats, present), fusion(other, present), atol=1e-6)


@pytest.mark.parametrize("name", ["concat", "sum", "attention", "gated"])
def test_zero_weight_equals_absence_of_content(name: str) -> None:
    """A weight of zero removes a modality's content; weights change the output otherwise."""
    torch.manual_seed(0)
    fusion = build_fusion(name, DIMS, 16).eval()
    feats = features()
    weights = torch.ones(5, 3)
    weights[:, 1] = 0
    other = dict(feats, b=feats["b"] * 3 - 1)
    assert torch.allclose(
        fusion(feats, all_present(), weights), fusion(other, all_present(), weights), atol=1e-6
    )
    doubled = torch.ones(5, 3)
    doubled[:, 0] = 2
    assert not torch.allclose(fusion(feats, all_present()), fusion(feats, all_present(), doubled))


def test_concat_tells_absence_from_zeros() -> None:
    torch.manual_seed(0)
    fusion = build_fusion("concat", DIMS, 16).eval()
    zeros = {m: torch.zeros(2, d) for m, d in DIMS.items()}
    present = all_present(2)
    absent = dict(present, a=torch.zeros(2, dtype=torch.bool))
    assert not torch.allclose(fusion(zeros, present), fusion(zeros, absent))


@pytest.mark.parametrize("name", ["concat", "sum", "attention", "gated"])
def test_all_missing_sample_is_a_clear_error(name: str) -> None:
    fusion = build_fusion(name, DIMS, 8)
    present = {m: torch.tensor([True, False]) for m in DIMS}
    with pytest.raises(DataError, match="every modality missing"):
        fusion(features(2), present)


def test_works_for_two_and_many_modalities() -> None:
    for dims in ({"x": 3, "y": 3}, {f"m{i}": 4 for i in range(7)}):
        for name in FUSIONS.names():
            fusion = build_fusion(name, dims, 8)
            out = fusion(
                {m: torch.randn(3, d) for m, d in dims.items()},
                {m: torch.ones(3, dtype=torch.bool) for m in dims},
            )
            assert out.shape == (3, 8)
