"""DMS for Hugging Face vision-language models: BLIP-2 and LLaVA (METHODS.md §2, token level).

:class:`DMSForVision2Seq` wraps a ``Blip2ForConditionalGeneration`` or a
``LlavaForConditionalGeneration``. Per sample, DMS's scheduler gives a weight to the image and
to the text, and the wrapper applies them where a pre-norm decoder cannot undo them: in every
self-attention layer of the language model, the attention logits of the keys of modality ``m``
get the bias ``log(M·w_m)`` (``M = 2``) [ours, METHODS.md §2]. Uniform weights give a zero bias
and leave the host model exactly unchanged; as ``w_image -> 0`` the image tokens drop out of the
text's attention and the model tends to its text-only pass. ``apply="embedding"`` instead scales
the input embeddings by ``M·w_m`` (the previous behaviour, kept for comparison): a pre-norm
decoder (RMSNorm/LayerNorm before attention, as in LLaMA and OPT) normalises that scale away.

The weights come from DMS's rule (or a given learned) scheduler over three signals:

* confidence ``c_m = 1 − H(p_m)`` [paper] (``confidence="normalised"``: ``1 − H/log V``) of the
  language model's next-token distribution from a unimodal pass, image-only (the image tokens
  and the BOS token) or text-only (the prompt without its image tokens);
* uncertainty ``u_m``: MC dropout (``T`` masks) on the projector's input for the image and on the
  token embeddings for the text, ``Var_t`` of the next-token probabilities averaged over the
  ``top_k`` most likely tokens of the mean prediction, ``/ 0.25``. Averaging over a 32k vocabulary
  would make ``u`` vanish, hence the top-k restriction [ours];
* consistency ``s`` (default ``consistency="agreement"``, as :class:`~robustfusion.methods.dms.DMS`):
  ``exp(−KL(p_m ‖ p_other))`` of the two unimodal next-token distributions [ours], which does
  not cancel; ``"cosine"``: ``(1 + cos)/2`` between the mean-pooled image tokens and the
  mean-pooled text embeddings in the language model's embedding space [paper] (the same for both
  modalities when M = 2, so it cancels in the rule).

All unimodal and MC sequences (``2·(T+1)·B`` rows) go through the language model in one batched,
left-padded pass (``lm_batch_size`` splits it), outside the weighting. The attention bias is
added by forward pre-hooks on the language model's self-attention modules, which turn the
host's mask (boolean, additive or none) into an additive one; in ``generate()`` the prompt's
image and text keys keep their biases at every step and the generated tokens get none [ours].
``transformers`` is an optional extra.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from robustfusion.errors import ConfigError, DataError, RobustFusionError
from robustfusion.modules.dms_signals import (
    CONFIDENCES,
    CONSISTENCIES,
    MAX_VARIANCE,
    prediction_agreement,
    semantic_consistency,
)
from robustfusion.modules.mc_dropout import MCDropout
from robustfusion.modules.scheduler import build_scheduler

MODALITIES: tuple[str, str] = ("image", "text")
#: How the weights act on the host model: an attention-logit bias per key modality (default) or
#: a scaling of the input embeddings.
APPLY_MODES = ("attention", "embedding")
#: The lowest attention bias: ``log(M·w)`` for ``w -> 0`` (attention weight ``e^-1e4 = 0``),
#: finite so that a query row whose keys are all image tokens does not produce NaN.
MIN_BIAS = -1e4
#: Attention implementations whose masks the bias hooks can extend.
BIASABLE_ATTENTION = ("eager", "sdpa")


class MissingExtraError(RobustFusionError, ImportError):
    """An optional dependency (an ``extra``) is not installed."""


def require_transformers() -> ModuleType:
    """Import ``transformers`` or raise a one-line error that says how to install it."""
    try:
        import transformers
    except ImportError as error:
        raise MissingExtraError(
            "the Hugging Face integration needs transformers: pip install 'robustfusion[hf]'"
        ) from error
    return transformers


@dataclass
class DMSSignals:
    """Per-sample signals and weights, ``[B, 2]`` each, columns in :data:`MODALITIES` order."""

    weights: Tensor
    confidence: Tensor
    uncertainty: Tensor
    consistency: Tensor
    modalities: tuple[str, ...] = MODALITIES


def topk_mc_uncertainty(mc_logits: Tensor, top_k: int) -> Tensor:
    """``mean_{k in top-k of mean_t p} Var_t[p_k] / 0.25`` for ``[T, B, V]`` logits -> ``[B]``."""
    probs = torch.softmax(mc_logits.float(), dim=-1)
    top = probs.mean(dim=0).topk(min(top_k, probs.shape[-1]), dim=-1).indices  # [B, k]
    chosen = probs.gather(-1, top.unsqueeze(0).expand(probs.shape[0], -1, -1))
    return (chosen.var(dim=0, unbiased=False).mean(dim=-1) / MAX_VARIANCE).clamp(0.0, 1.0)


def _left_pack(embeds: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """Move the kept positions of each row to the right end (left padding): ``(embeds, mask)``."""
    lengths = keep.sum(dim=1)
    width = int(lengths.max())
    order = torch.sort(keep.to(torch.int8), dim=1, stable=True).indices[:, -width:]
    packed = embeds.gather(1, order.unsqueeze(-1).expand(-1, -1, embeds.shape[-1]))
    mask = torch.arange(width, device=keep.device).unsqueeze(0) >= (width - lengths).unsqueeze(1)
    return packed * mask.unsqueeze(-1).to(packed.dtype), mask.long()


def _accepts(function: Any, name: str) -> bool:
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without signatures
        return False


class DMSForVision2Seq(nn.Module):
    """DMS around a BLIP-2 or LLaVA model; ``forward`` and ``generate`` take the host's arguments.

    Args:
        model: a ``Blip2ForConditionalGeneration`` or ``LlavaForConditionalGeneration``.
        T: MC-dropout samples; mc_dropout: their dropout probability.
        scheduler: ``"rule"`` (``softmax((a·c − b·u + g·s)/τ)``) or a trained module with the
            :class:`~robustfusion.modules.scheduler.RuleScheduler` call signature (e.g. a
            :class:`~robustfusion.modules.scheduler.LearnedScheduler` for 2 modalities).
        confidence: ``"entropy"`` (``1 − H``, the paper's) or ``"normalised"`` (``1 − H/log V``).
        consistency: ``"cosine"`` (the paper's) or ``"agreement"`` (does not cancel for M = 2).
        apply: ``"attention"`` (bias ``log(M·w_m)`` on the attention logits of modality ``m``'s
            keys in every language-model layer) or ``"embedding"`` (input embeddings scaled by
            ``M·w_m``; largely undone by pre-norm decoders).
        top_k: tokens over which the MC variance is averaged.
        lm_batch_size: rows per language-model call of the signal pass (None: all at once).
        seed: seeds the MC-dropout masks, so the weights of an input are reproducible.

    After a call, ``last_signals`` holds the :class:`DMSSignals` it used.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        T: int = 10,  # the paper's name
        mc_dropout: float = 0.1,
        scheduler: str | nn.Module = "rule",
        a: float = 1.0,
        b: float = 1.0,
        g: float = 1.0,
        tau: float = 1.0,
        confidence: str = "entropy",
        consistency: str = "agreement",
        apply: str = "attention",
        top_k: int = 10,
        lm_batch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        transformers = require_transformers()
        if isinstance(model, transformers.Blip2ForConditionalGeneration):
            self.kind = "blip2"
            projector = model.language_projection
        elif isinstance(model, transformers.LlavaForConditionalGeneration):
            self.kind = "llava"
            projector = model.model.multi_modal_projector
        else:
            raise ConfigError(
                f"DMSForVision2Seq wraps Blip2ForConditionalGeneration or "
                f"LlavaForConditionalGeneration, got {type(model).__name__}"
            )
        if int(T) < 2:
            raise ConfigError(f"T={T} MC samples cannot estimate a variance: use T >= 2")
        if confidence not in CONFIDENCES:
            raise ConfigError(f"confidence={confidence!r}: use 'entropy' or 'normalised'")
        if consistency not in CONSISTENCIES:
            raise ConfigError(f"consistency={consistency!r}: use 'cosine' or 'agreement'")
        if apply not in APPLY_MODES:
            raise ConfigError(f"apply={apply!r}: use 'attention' or 'embedding'")
        self.model = model
        self.samples = int(T)
        self.confidence = confidence
        self.consistency = consistency
        self.apply = apply
        self.top_k = int(top_k)
        self.lm_batch_size = lm_batch_size
        self.seed = int(seed)
        self.dropout = MCDropout(mc_dropout)
        self.scheduler = (
            build_scheduler("rule", 2, a=a, b=b, g=g, tau=tau) if scheduler == "rule" else scheduler
        )
        if not isinstance(self.scheduler, nn.Module):
            raise ConfigError(f"scheduler must be 'rule' or an nn.Module, got {scheduler!r}")
        self.image_token_id = int(model.config.image_token_id)
        text_config = model.config.text_config
        self.bos_token_id = getattr(text_config, "bos_token_id", None)
        self.projector = projector
        self.embedding = model.get_input_embeddings()
        self.last_signals: DMSSignals | None = None
        self._scales: dict[str, Tensor] = {}
        self._key_bias: Tensor | None = None
        self._fired: set[str] = set()
        if apply == "attention":
            self.attention_modules = self._language_attention(model, text_config)
            self._handles = [
                module.register_forward_pre_hook(self._bias_attention, with_kwargs=True)
                for module in self.attention_modules
            ]
        else:
            self.attention_modules = []
            self._handles = [
                projector.register_forward_hook(self._hook("image")),
                self.embedding.register_forward_hook(self._hook("text")),
            ]

    @staticmethod
    def _language_attention(model: nn.Module, text_config: Any) -> list[nn.Module]:
        """The self-attention modules of the language model's decoder layers."""
        implementation = getattr(text_config, "_attn_implementation", None) or "eager"
        if implementation not in BIASABLE_ATTENTION:
            raise ConfigError(
                f"apply='attention' extends eager or sdpa attention masks, not "
                f"{implementation!r}: load the model with attn_implementation='sdpa', or use "
                "apply='embedding'"
            )
        decoder = model.get_decoder()
        if getattr(decoder.config, "is_encoder_decoder", False):
            raise ConfigError(
                "apply='attention' supports decoder-only language models (OPT, LLaMA ...): "
                "use apply='embedding' for an encoder-decoder such as Flan-T5"
            )
        modules = [m for name, m in decoder.named_modules() if name.endswith("self_attn")]
        if not modules:
            raise ConfigError(
                f"no self-attention modules found in {type(decoder).__name__}: use "
                "apply='embedding'"
            )
        return modules

    # ----------------------------------------------------------------------------- signals
    @torch.no_grad()
    def compute_signals(
        self,
        pixel_values: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        **image_kwargs: Any,
    ) -> DMSSignals:
        """The DMS signals and weights of a batch of (image, prompt) pairs."""
        if input_ids.dim() != 2 or pixel_values.shape[0] != input_ids.shape[0]:
            raise DataError(
                f"DMS needs one image per prompt: got {pixel_values.shape[0]} images for "
                f"input_ids of shape {tuple(input_ids.shape)}"
            )
        batch = input_ids.shape[0]
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        is_image = input_ids == self.image_token_id
        is_text = attention_mask.bool() & ~is_image
        if not bool(is_image.any(dim=1).all()) or not bool(is_text.any(dim=1).all()):
            raise DataError(
                f"every prompt needs image tokens (id {self.image_token_id}) and text tokens: "
                "build the inputs with the model's processor"
            )
        projector_input, tokens = self._image_tokens(pixel_values, **image_kwargs)
        generator = torch.Generator(device=tokens.device).manual_seed(self.seed)
        samples = self.samples
        mc_input = projector_input.repeat(samples, *([1] * (projector_input.dim() - 1)))
        mc_tokens = self.projector(self.dropout(mc_input, active=True, generator=generator))
        text = self.embedding(input_ids)
        mc_text = self.dropout(text.repeat(samples, 1, 1), active=True, generator=generator)

        image_keep = is_image.clone()
        if self.bos_token_id is not None:  # the image-only pass keeps the BOS token
            image_keep |= (input_ids == self.bos_token_id) & attention_mask.bool()
        merged = text.masked_scatter(is_image.unsqueeze(-1), tokens.to(text.dtype))
        mc_merged = text.repeat(samples, 1, 1).masked_scatter(
            is_image.repeat(samples, 1).unsqueeze(-1), mc_tokens.to(text.dtype)
        )
        rows = [
            _left_pack(merged, image_keep),
            _left_pack(text, is_text),
            _left_pack(mc_merged, image_keep.repeat(samples, 1)),
            _left_pack(mc_text, is_text.repeat(samples, 1)),
        ]
        width = max(r[0].shape[1] for r in rows)
        embeds = torch.cat([nn.functional.pad(e, (0, 0, width - e.shape[1], 0)) for e, _ in rows])
        masks = torch.cat([nn.functional.pad(m, (width - m.shape[1], 0)) for _, m in rows])
        logits = self._next_token_logits(embeds, masks).float()

        det_image, det_text = logits[:batch], logits[batch : 2 * batch]
        mc = logits[2 * batch :]
        mc_image = mc[: samples * batch].reshape(samples, batch, -1)
        mc_text_logits = mc[samples * batch :].reshape(samples, batch, -1)
        confidence = CONFIDENCES[self.confidence](torch.stack([det_image, det_text], 1))
        uncertainty = torch.stack(
            [
                topk_mc_uncertainty(mc_image, self.top_k),
                topk_mc_uncertainty(mc_text_logits, self.top_k),
            ],
            dim=1,
        )
        present = torch.ones(batch, 2, dtype=torch.bool, device=tokens.device)
        if self.consistency == "agreement":
            consistency = prediction_agreement(torch.stack([det_image, det_text], 1), present)
        else:
            pooled_image = tokens.float().mean(dim=1)
            text_weight = is_text.unsqueeze(-1).to(torch.float32)
            pooled_text = (text.float() * text_weight).sum(1) / text_weight.sum(1).clamp_min(1.0)
            consistency = semantic_consistency(torch.stack([pooled_image, pooled_text], 1), present)
        weights = self.scheduler(confidence, uncertainty, consistency, present)
        return DMSSignals(weights, confidence, uncertainty, consistency)

    def _image_tokens(self, pixel_values: Tensor, **image_kwargs: Any) -> tuple[Tensor, Tensor]:
        """``(projector input, projected image tokens [B, N, H])`` from the host's image path."""
        captured: dict[str, Tensor] = {}

        def capture(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> None:
            captured["input"], captured["output"] = args[0], output

        handle = self.projector.register_forward_hook(capture)
        try:
            self.model.get_image_features(pixel_values=pixel_values, **image_kwargs)
        finally:
            handle.remove()
        if "input" not in captured or captured["output"].shape[0] != pixel_values.shape[0]:
            raise DataError(
                "DMS needs one image (one set of image tokens) per prompt; got "
                f"{tuple(captured.get('output', torch.empty(0)).shape)} for "
                f"{pixel_values.shape[0]} images"
            )
        return captured["input"], captured["output"]

    def _next_token_logits(self, embeds: Tensor, mask: Tensor) -> Tensor:
        """Next-token logits ``[N, V]`` at the last (real, left-padded) position of each row."""
        size = self.lm_batch_size or embeds.shape[0]
        outputs = [
            self._lm_call(embeds[i : i + size], mask[i : i + size])
            for i in range(0, embeds.shape[0], size)
        ]
        return torch.cat(outputs)

    def _lm_call(self, embeds: Tensor, mask: Tensor) -> Tensor:
        language_model = self.model.language_model if self.kind == "blip2" else self.model
        kwargs: dict[str, Any] = {"inputs_embeds": embeds, "attention_mask": mask}
        config = language_model.config
        if getattr(config, "is_encoder_decoder", False):
            start = getattr(config, "decoder_start_token_id", None) or 0
            kwargs["decoder_input_ids"] = torch.full(
                (embeds.shape[0], 1), start, dtype=torch.long, device=embeds.device
            )
        else:
            if _accepts(language_model.forward, "position_ids"):
                kwargs["position_ids"] = (mask.cumsum(dim=1) - 1).clamp_min(0)
            if _accepts(language_model.forward, "logits_to_keep"):
                kwargs["logits_to_keep"] = 1
        return language_model(**kwargs).logits[:, -1]

    # ----------------------------------------------------------------------------- applying
    def key_bias(self, weights: Tensor, input_ids: Tensor) -> Tensor:
        """``[B, L]`` attention bias of each token as a key: ``log(M·w_m)`` of its modality."""
        log_weights = (len(MODALITIES) * weights.detach().float()).log().clamp_min(MIN_BIAS)
        is_image = input_ids == self.image_token_id
        return torch.where(is_image, log_weights[:, :1], log_weights[:, 1:])

    def _bias_attention(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        """Forward pre-hook: add the key bias to the attention mask the layer receives."""
        bias = self._key_bias
        if bias is None:
            return None
        self._fired.add("attention")
        hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        batch, queries = hidden.shape[:2]
        mask = kwargs.get("attention_mask")
        if mask is not None and not isinstance(mask, Tensor):
            raise ConfigError(
                f"apply='attention' cannot extend a {type(mask).__name__} attention mask: load "
                "the model with attn_implementation='sdpa' or 'eager'"
            )
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        past = 0
        if mask is None and cache is not None:
            past = int(cache.get_seq_length(getattr(module, "layer_idx", 0)))
        keys = int(mask.shape[-1]) if mask is not None else past + queries
        if batch % bias.shape[0] or keys < bias.shape[1]:
            raise DataError(
                f"DMS key bias for {bias.shape[0]} prompts of {bias.shape[1]} tokens cannot "
                f"weight {batch} sequences of {keys} keys: use one image per prompt"
            )
        bias = bias.repeat_interleave(batch // bias.shape[0], dim=0)
        bias = nn.functional.pad(bias, (0, keys - bias.shape[1]))  # generated tokens: no bias
        dtype = hidden.dtype
        compute = torch.promote_types(dtype, torch.float32)  # fp16/bf16 hosts: add in fp32
        zero = torch.zeros((), dtype=compute, device=hidden.device)
        lowest = torch.full((), torch.finfo(dtype).min, dtype=compute, device=hidden.device)
        if mask is None:  # causal, aligned on the last query: key j <= past + i
            rows = past + torch.arange(queries, device=hidden.device).unsqueeze(1)
            allowed = torch.arange(keys, device=hidden.device).unsqueeze(0) <= rows
            additive = torch.where(allowed, zero, lowest).view(1, 1, queries, keys)
        elif mask.dtype == torch.bool:
            additive = torch.where(mask, zero, lowest)
        else:
            additive = mask.to(compute)
        biased = additive + bias.to(device=hidden.device, dtype=compute)[:, None, None, :]
        kwargs = dict(kwargs, attention_mask=torch.maximum(biased, lowest).to(dtype))
        return args, kwargs

    def _hook(self, modality: str) -> Any:
        def scale(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> Tensor | None:
            factor = self._scales.pop(modality, None)
            if factor is None:
                return None
            self._fired.add(modality)
            if output.shape[0] % factor.shape[0]:
                raise DataError(
                    f"DMS weights for {factor.shape[0]} samples cannot scale {modality} "
                    f"embeddings of batch {output.shape[0]}: use one image per prompt"
                )
            factor = factor.repeat_interleave(output.shape[0] // factor.shape[0])
            return output * factor.view(-1, *([1] * (output.dim() - 1))).to(output.dtype)

        return scale

    @contextmanager
    def weighting(self, weights: Tensor, input_ids: Tensor) -> Iterator[None]:
        """Within the block, the host model's calls use the DMS weights ``[B, 2]`` (image, text).

        ``apply="attention"``: the attention bias of ``input_ids``'s image and text tokens, for
        every call in the block (a ``generate`` included); uniform weights add nothing.
        ``apply="embedding"``: the next image-token and prompt embeddings are scaled by ``M·w``.
        """
        self._fired = set()
        expected: set[str] = set()
        if self.apply == "attention":
            bias = self.key_bias(weights, input_ids)
            if bool((bias != 0).any()):  # uniform weights: the host model exactly as it is
                self._key_bias = bias
                expected = {"attention"}
        else:
            factors = len(MODALITIES) * weights.detach()
            self._scales = {"image": factors[:, 0], "text": factors[:, 1]}
            expected = set(MODALITIES)
        try:
            yield
        finally:
            self._scales = {}
            self._key_bias = None
        if not expected <= self._fired:
            raise RuntimeError(
                f"DMS hooks fired for {sorted(self._fired)} only: this transformers "
                "version builds the inputs differently; please report it"
            )

    def _signals(
        self, pixel_values: Tensor, input_ids: Tensor, attention_mask: Tensor | None, kwargs: dict
    ) -> DMSSignals:
        image_kwargs = {
            k: kwargs[k]
            for k in (
                "vision_feature_layer",
                "vision_feature_select_strategy",
                "interpolate_pos_encoding",
            )
            if k in kwargs
        }
        signals = self.compute_signals(pixel_values, input_ids, attention_mask, **image_kwargs)
        self.last_signals = signals
        return signals

    def forward(
        self,
        pixel_values: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        """The host model's forward under the DMS weights; ``last_signals`` holds them."""
        signals = self._signals(pixel_values, input_ids, attention_mask, kwargs)
        with self.weighting(signals.weights, input_ids):
            return self.model(
                pixel_values=pixel_values,
                input_ids=input_ids,
                attention_mask=attention_mask,
                **kwargs,
            )

    @torch.no_grad()
    def generate(
        self,
        pixel_values: Tensor,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        **kwargs: Any,
    ) -> Tensor:
        """The host model's ``generate`` under the DMS weights of the prompt."""
        signals = self._signals(pixel_values, input_ids, attention_mask, kwargs)
        with self.weighting(signals.weights, input_ids):
            return self.model.generate(
                pixel_values=pixel_values,
                input_ids=input_ids,
                attention_mask=attention_mask,
                **kwargs,
            )

    def remove_hooks(self) -> None:
        """Detach the wrapper from the host model (it behaves as before wrapping)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
