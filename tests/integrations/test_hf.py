"""DMS around tiny, randomly initialised BLIP-2 and LLaVA models (no weights are downloaded)."""

from __future__ import annotations

import math
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


def _blip2(layers: int = 1, init: float = 0.02) -> nn.Module:
    """A tiny random BLIP-2 with a pre-norm OPT language model (``do_layer_norm_before``)."""
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
            num_hidden_layers=layers,
            init_std=init,
            do_layer_norm_before=True,
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
        initializer_range=init,
    )
    return transformers.Blip2ForConditionalGeneration(config).eval()


def _llava(layers: int = 1, init: float = 0.02) -> nn.Module:
    """A tiny random LLaVA: CLIP vision tower and a pre-norm (RMSNorm) Llama language model."""
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
            num_hidden_layers=layers,
            initializer_range=init,
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
    for values in (signals.uncertainty, signals.consistency):
        assert values.shape == (2, 2) and bool(((values >= 0) & (values <= 1)).all())
    # the paper's confidence 1 - H over the vocabulary: in [1 - log V, 1]
    assert bool((signals.confidence >= 1 - math.log(VOCAB) - 1e-5).all())
    assert bool((signals.confidence <= 1).all())
    generated = wrapper.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape[0] == 2 and generated.shape[1] >= 3
    wrapper.remove_hooks()


def test_generate_keeps_the_prompt_bias_at_every_step(case: tuple) -> None:
    kind, model = case
    wrapper = DMSForVision2Seq(model, T=2)
    inputs = _inputs(kind)
    length = inputs["input_ids"].shape[1]
    seen: list[torch.Tensor] = []

    def grab(module: nn.Module, args: tuple, kwargs: dict) -> None:
        seen.append(kwargs["attention_mask"][:, 0, -1])  # the last query's row: every key

    handle = wrapper.attention_modules[0].register_forward_pre_hook(grab, with_kwargs=True)
    weights = torch.tensor([[0.1, 0.9], [0.9, 0.1]])
    try:
        with wrapper.weighting(weights, inputs["input_ids"]):
            model.generate(**inputs, max_new_tokens=3, do_sample=False)
        handle.remove()
        with wrapper.weighting(torch.full((2, 2), 0.5), inputs["input_ids"]):
            uniform = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    finally:
        handle.remove()
        wrapper.remove_hooks()
    assert [row.shape[-1] for row in seen] == [length, length + 1, length + 2]
    bias = wrapper.key_bias(weights, inputs["input_ids"])
    for row in seen:  # the prompt's keys keep their bias, the generated ones get none
        torch.testing.assert_close(row[:, :length], bias)
        assert bool((row[:, length:] == 0).all())
    torch.testing.assert_close(uniform, model.generate(**inputs, max_new_tokens=3, do_sample=False))


def test_embedding_mode_scales_the_embeddings_by_m_times_the_weights(case: tuple) -> None:
    kind, model = case
    wrapper = DMSForVision2Seq(model, T=3, apply="embedding")
    inputs = _inputs(kind)
    captured: dict[str, torch.Tensor] = {}
    language_model = model.get_decoder()

    def grab(module: nn.Module, args: tuple, kwargs: dict) -> None:
        captured.setdefault("embeds", kwargs["inputs_embeds"])

    handle = language_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        weights = torch.tensor([[0.25, 0.75], [0.5, 0.5]])
        with wrapper.weighting(weights, inputs["input_ids"]):
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


def test_attention_mode_biases_the_keys_of_each_modality_in_every_layer(case: tuple) -> None:
    kind, model = case
    wrapper = DMSForVision2Seq(model, T=2)
    assert wrapper.attention_modules  # the language model's self-attention layers
    inputs = _inputs(kind)
    masks: list[torch.Tensor] = []

    def grab(module: nn.Module, args: tuple, kwargs: dict) -> None:
        masks.append(kwargs["attention_mask"])

    handles = [
        m.register_forward_pre_hook(grab, with_kwargs=True) for m in wrapper.attention_modules
    ]
    weights = torch.tensor([[0.2, 0.8], [0.7, 0.3]])
    try:
        with torch.no_grad(), wrapper.weighting(weights, inputs["input_ids"]):
            model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
        wrapper.remove_hooks()
    assert len(masks) == len(wrapper.attention_modules)
    mask = masks[0]  # [B, 1, L, L], additive
    is_image = inputs["input_ids"] == IMAGE_TOKEN
    last = mask[:, 0, -1]  # the last query sees every key (causal)
    expected = torch.where(is_image, (2 * weights[:, :1]).log(), (2 * weights[:, 1:]).log())
    torch.testing.assert_close(last, expected)
    # causality is kept: the first query cannot see the second key
    assert float(mask[0, 0, 0, 1]) < -1e30


def test_uniform_weights_leave_the_model_unchanged(case: tuple) -> None:
    kind, model = case
    inputs = _inputs(kind)
    with torch.no_grad():
        plain = model(**inputs).logits
    for apply in ("attention", "embedding"):
        wrapper = DMSForVision2Seq(model, T=2, apply=apply)
        with torch.no_grad(), wrapper.weighting(torch.full((2, 2), 0.5), inputs["input_ids"]):
            weighted = model(**inputs).logits
        assert torch.equal(weighted, plain), apply
        # one uniform sample in a batch whose other sample is biased: the same to 1e-6 (the
        # host's mask is converted to an additive one)
        mixed = torch.tensor([[0.5, 0.5], [0.1, 0.9]])
        with torch.no_grad(), wrapper.weighting(mixed, inputs["input_ids"]):
            weighted = model(**inputs).logits
        wrapper.remove_hooks()
        torch.testing.assert_close(weighted[0], plain[0], rtol=0, atol=1e-6)
        assert not torch.allclose(weighted[1], plain[1], rtol=0, atol=1e-6)


def _text_only_next_token(model: nn.Module, kind: str, inputs: dict) -> torch.Tensor:
    """Log-probabilities of the next token with the image keys masked out (same positions)."""
    captured: dict[str, torch.Tensor] = {}
    decoder = model.get_decoder()

    def grab(module: nn.Module, args: tuple, kwargs: dict) -> None:
        captured.setdefault("embeds", kwargs["inputs_embeds"])

    handle = decoder.register_forward_pre_hook(grab, with_kwargs=True)
    with torch.no_grad():
        model(**inputs)
    handle.remove()
    ids = inputs["input_ids"]
    mask = inputs["attention_mask"] * (ids != IMAGE_TOKEN).long()
    positions = torch.arange(ids.shape[1]).expand_as(ids)
    with torch.no_grad():
        out = decoder(inputs_embeds=captured["embeds"], attention_mask=mask, position_ids=positions)
        logits = model.lm_head(out.last_hidden_state) if kind == "llava" else out.logits
    return torch.log_softmax(logits[:, -1], -1)


@pytest.mark.parametrize("kind", ["blip2", "llava"])
def test_next_token_moves_monotonically_to_the_text_only_pass_as_the_image_weight_falls(
    kind: str,
) -> None:
    """Two pre-norm layers, weights large enough for peaked predictions, float64. The attention
    bias brings the next-token distribution monotonically to the text-only pass; scaling the
    embeddings (undone by the pre-norm) does not get there."""
    model = (_blip2 if kind == "blip2" else _llava)(layers=2, init=0.3).double()
    inputs = _inputs(kind)
    inputs["pixel_values"] = inputs["pixel_values"].double()
    text_only = _text_only_next_token(model, kind, inputs)
    image_weights = [0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01, 0.001, 0.0]
    divergence = {}
    for apply in ("attention", "embedding"):
        wrapper = DMSForVision2Seq(model, T=2, apply=apply)
        values = []
        for w in image_weights:
            weights = torch.tensor([[w, 1 - w]] * 2, dtype=torch.float64)
            with torch.no_grad(), wrapper.weighting(weights, inputs["input_ids"]):
                log_p = torch.log_softmax(model(**inputs).logits[:, -1], -1)
            values.append((log_p.exp() * (log_p - text_only)).sum(-1))
        wrapper.remove_hooks()
        divergence[apply] = torch.stack(values)  # [weights, B]
    attention = divergence["attention"]
    assert bool((attention[0] > 0.1).all())  # at uniform weights the image matters
    assert bool((attention[1:] < attention[:-1]).all())  # strictly decreasing for every sample
    assert bool((attention[-1].abs() < 1e-12).all())  # w_image = 0: the text-only pass
    assert bool((attention[-2] < 1e-3).all())
    assert bool((divergence["embedding"][-2] > 0.05).all())


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
