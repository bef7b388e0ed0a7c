"""DMS around tiny, randomly initialised BLIP-2 and LLaVA models (no weights are downloaded)."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")

from robustfusion.errors import ConfigError, DataError, RobustFusionError  # noqa: E402
from robustfusion.integrations.hf import (  # noqa: E402
    DMSForVision2Seq,
    require_transformers,
    topk_mc_uncertainty,
)

VOCAB = 64
IMAGE_TOKEN = 60


def _blip2() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.Blip2Config(
        vision_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=16,
            patch_size=8,
        ),
        qformer_config=dict(
            vocab_size=VOCAB,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            encoder_hidden_size=16,
        ),
        text_config=transformers.OPTConfig(
            vocab_size=VOCAB,
            hidden_size=16,
            num_hidden_layers=1,
            ffn_dim=32,
            num_attention_heads=2,
            max_position_embeddings=64,
            word_embed_proj_dim=16,
            bos_token_id=2,
            eos_token_id=2,
            pad_token_id=1,
        ).to_dict(),
        num_query_tokens=4,
        image_token_index=IMAGE_TOKEN,
    )
    return transformers.Blip2ForConditionalGeneration(config).eval()


def _llava() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.LlavaConfig(
        vision_config=transformers.CLIPVisionConfig(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=16,
            patch_size=8,
            projection_dim=16,
        ).to_dict(),
        text_config=transformers.LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=64,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        ).to_dict(),
        image_token_index=IMAGE_TOKEN,
        vision_feature_layer=-1,
    )
    return transformers.LlavaForConditionalGeneration(config).eval()


def _inputs(kind: str) -> dict[str, torch.Tensor]:
    """Prompts laid out as the processors lay them out: 4 image tokens per image."""
    g = torch.Generator().manual_seed(0)
    image = [IMAGE_TOKEN] * 4
    if kind == "blip2":  # [image tokens][BOS] question
        ids = [image + [2, 10, 11, 12], image + [2, 13, 14, 15]]
    else:  # BOS "USER:" [image tokens] question
        ids = [[1, 5, *image, 10, 11], [1, 6, *image, 13, 14]]
    return {
        "pixel_values": torch.randn(2, 3, 16, 16, generator=g),
        "input_ids": torch.tensor(ids),
        "attention_mask": torch.ones(2, len(ids[0]), dtype=torch.long),
    }


@pytest.fixture(scope="module", params=["blip2", "llava"])
def case(request: pytest.FixtureRequest) -> tuple[str, nn.Module]:
    return request.param, _blip2() if request.param == "blip2" else _llava()


def test_forward_and_generate_run_with_weights_that_sum_to_one(case: tuple) -> None:
    kind, model = case
    wrapper = DMSForVision2Seq(model, T=4)
    inputs = _inputs(kind)
    out = wrapper(**inputs)
    assert out.logits.shape == (2, inputs["input_ids"].shape[1], VOCAB)
    signals = wrapper.last_signals
    assert signals is not None and signals.weights.shape == (2, 2)
    assert torch.allclose(signals.weights.sum(1), torch.ones(2))
    for values in (signals.confidence, signals.uncertainty, signals.consistency):
        assert values.shape == (2, 2) and bool(((values >= 0) & (values <= 1)).all())
    generated = wrapper.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape[0] == 2 and generated.shape[1] >= 3
    wrapper.remove_hooks()


def test_embeddings_are_scaled_by_m_times_the_weights(case: tuple) -> None:
    kind, model = case
    wrapper = DMSForVision2Seq(model, T=3)
    inputs = _inputs(kind)
    captured: dict[str, torch.Tensor] = {}
    language_model = model.language_model if kind == "blip2" else model.model.language_model

    def grab(module: nn.Module, args: tuple, kwargs: dict) -> None:
        captured.setdefault("embeds", kwargs["inputs_embeds"])

    handle = language_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        weights = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
        with wrapper.scaling(weights):
            model(**inputs)
        scaled = captured.pop("embeds")
        model(**inputs)  # hooks disarmed: the host model is unchanged
        plain = captured.pop("embeds")
    finally:
        handle.remove()
        wrapper.remove_hooks()
    is_image = (inputs["input_ids"] == IMAGE_TOKEN).unsqueeze(-1)
    factor = torch.where(is_image, 2 * weights[:, :1, None], 2 * weights[:, 1:, None])
    torch.testing.assert_close(scaled, plain * factor)


def test_uniform_weights_leave_the_model_unchanged(case: tuple) -> None:
    kind, model = case
    wrapper = DMSForVision2Seq(model, T=2)
    inputs = _inputs(kind)
    with wrapper.scaling(torch.full((2, 2), 0.5)):
        scaled = model(**inputs).logits
    wrapper.remove_hooks()
    torch.testing.assert_close(scaled, model(**inputs).logits)


def test_signals_are_reproducible_and_react_to_a_noised_image(case: tuple) -> None:
    kind, model = case
    wrapper = DMSForVision2Seq(model, T=4, seed=3)
    inputs = _inputs(kind)
    first = wrapper.compute_signals(inputs["pixel_values"], inputs["input_ids"])
    second = wrapper.compute_signals(inputs["pixel_values"], inputs["input_ids"])
    torch.testing.assert_close(first.weights, second.weights)
    noisy = inputs["pixel_values"] + 5 * torch.randn(
        2, 3, 16, 16, generator=torch.Generator().manual_seed(1)
    )
    third = wrapper.compute_signals(noisy, inputs["input_ids"])
    assert not torch.allclose(first.confidence[:, 0], third.confidence[:, 0])
    # the text-only pass does not see the image
    torch.testing.assert_close(first.confidence[:, 1], third.confidence[:, 1])
    wrapper.remove_hooks()


def test_bad_inputs_raise_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="Blip2ForConditionalGeneration"):
        DMSForVision2Seq(nn.Linear(2, 2))
    model = _llava()
    wrapper = DMSForVision2Seq(model, T=2)
    inputs = _inputs("llava")
    with pytest.raises(DataError, match="image tokens"):
        wrapper.compute_signals(inputs["pixel_values"], torch.tensor([[1, 5, 6], [1, 7, 8]]))
    with pytest.raises(ConfigError, match="T=1"):
        DMSForVision2Seq(model, T=1)
    wrapper.remove_hooks()


def test_missing_transformers_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require_transformers().__name__ == "transformers"
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(RobustFusionError, match=r"pip install 'robustfusion\[hf\]'"):
        require_transformers()


def test_topk_uncertainty() -> None:
    same = torch.randn(1, 3, 50).expand(5, 3, 50)
    assert torch.allclose(topk_mc_uncertainty(same, 10), torch.zeros(3), atol=1e-7)
    flip = torch.full((4, 1, 50), -100.0)
    flip[0::2, 0, 0] = 100.0
    flip[1::2, 0, 1] = 100.0
    # two of the top-2 tokens swap between passes: variance 0.25 each -> u = 1
    assert torch.allclose(topk_mc_uncertainty(flip, 2), torch.ones(1))
