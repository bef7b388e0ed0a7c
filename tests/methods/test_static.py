import pytest
import torch
import torch.nn.functional as F

from robustfusion.encoders import build_encoder
from robustfusion.errors import ConfigError, UnknownNameError
from robustfusion.methods import MethodSpec, build_method
from robustfusion.model import MultimodalModel
from robustfusion.types import Batch

SPEC = MethodSpec(
    modalities=("a", "b"), feature_dims={"a": 16, "b": 16}, num_classes=3, hidden_dim=16
)


def toy_batch(n: int = 64) -> Batch:
    """Class k shifts modality 'a' by k; modality 'b' is pure noise."""
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 3, (n,), generator=generator)
    a = torch.randn(n, 5, generator=generator) * 0.3 + target[:, None].float()
    b = torch.randn(n, 1, 6, 6, generator=generator)
    return Batch(
        {"a": a, "b": b},
        {"a": torch.ones(n, dtype=torch.bool), "b": torch.ones(n, dtype=torch.bool)},
        target,
        torch.arange(n),
    )


@pytest.mark.parametrize("fusion", ["concat", "sum", "attention", "gated"])
def test_static_learns_a_separable_task(fusion: str) -> None:
    torch.manual_seed(0)
    spec = MethodSpec(**{**SPEC.__dict__, "fusion": fusion})
    model = MultimodalModel(
        {"a": build_encoder(None, (5,), 16), "b": build_encoder(None, (1, 6, 6), 16)},
        build_method("static", spec),
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = toy_batch()
    for _ in range(60):
        optimiser.zero_grad()
        output = model(batch)
        loss = sum(model.method.losses(output, batch).values())
        loss.backward()
        optimiser.step()
    model.eval()
    output = model(batch)
    assert (output.logits.argmax(1) == batch.target).float().mean() > 0.9
    assert torch.allclose(output.weights.sum(1), torch.ones(64))
    assert F.cross_entropy(output.logits, batch.target) < 0.5


def test_unimodal_uses_only_its_modality() -> None:
    torch.manual_seed(0)
    method = build_method("unimodal", SPEC, {"unimodal": {"modality": "b"}})
    feats = {"a": torch.randn(4, 16), "b": torch.randn(4, 16)}
    present = {"a": torch.ones(4, dtype=torch.bool), "b": torch.tensor([True, True, False, True])}
    out = method(feats, present)
    other = method({"a": feats["a"] * 10, "b": feats["b"]}, present)
    assert torch.equal(out.logits, other.logits)
    assert out.weights[:, 1].tolist() == [1.0, 1.0, 0.0, 1.0]
    assert torch.equal(out.logits[2], torch.zeros(3))
    assert set(out.unimodal_logits) == {"b"}


def test_bad_method_names_and_options() -> None:
    with pytest.raises(UnknownNameError):
        build_method("nope", SPEC)
    with pytest.raises(ConfigError, match="bad options for method 'static'"):
        build_method("static", SPEC, {"static": {"bogus": 1}})
    with pytest.raises(ConfigError, match="unknown modality"):
        build_method("unimodal", SPEC, {"unimodal": {"modality": "zz"}})
    with pytest.raises(ConfigError, match="cannot wrap"):
        build_method("static+unimodal", SPEC)
