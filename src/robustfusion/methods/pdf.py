"""PDF: Predictive Dynamic Fusion (Cao, Xia, Ding, Zhang, Hu, ICML 2024, arXiv 2406.04802).

Code: github.com/Yinan-Xia/PDF (``src/models/latefusion_pdf.py``, ``train_pdf.py``,
``test_pdf.py``); QMF's successor. Late fusion of unimodal heads ``f_m`` with per-sample weights
from the predicted *Co-Belief* of each modality (paper, "Predictive Dynamic Fusion"; the equation
numbers of the paper are not cited here, the names are)::

    Mono_m = p_hat_m                                       (ConfidNet: sigmoid, regresses p_m(y))
    Holo_m = sum_{j != m} log p_hat_j / sum_j log p_hat_j  (share of the others' loss in the total)
    Co-Belief_m = Mono_m + Holo_m
    DU_m = mean_c |softmax(f_m)_c - 1/C|                   (distance from uniform, "relative
    RC_m = DU_m / max_k DU_k                                calibration")
    w = softmax_m(Co-Belief_m * RC_m),   logits = sum_m w_m f_m

over the present modalities (absent ones: weight 0, left out of every sum, max and softmax).
Loss [code]: ``CE(logits) + sum_m CE(f_m) + tcp_weight * sum_m |p_hat_m - p_m(y)|`` (L1, target
detached) + the ConfidNet weight decay below. Each ConfidNet is the code's
``Linear(D, 2D), Linear(2D, D), Linear(D, 1), Sigmoid`` (no activation between the linear maps;
``confidnet_activation="relu"`` adds ReLUs [ours]).

M modalities: the code has two (text, image). ``Holo_m`` is written for the sum of the other
modalities' log-confidences, which for two is the code's ``log p_other / log(p_self p_other)``.
``RC_m = DU_m / max_k DU_k`` is the code's two-modality rule (the more certain modality keeps its
Co-Belief, ``RC = 1``; the other gets ``DU_self / DU_other``) written for M: every modality is
scaled by its distance from uniform relative to the most certain one [ours for M > 2].

Decisions on the code's traps:

* Holo-Confidence guard [ours]: the code divides by ``log(p_txt p_img) + 1e-8``, which is 0 or
  of the wrong sign when both ``p_hat`` are within ~1e-8 of 1 and NaN (``-inf/-inf``) when a
  sigmoid saturates at 0 (the README's NaN warning; its cure there is a smaller learning rate or
  more weight decay). We clamp each ``p_hat`` to ``[holo_eps, 1 - holo_eps]`` (default 1e-6)
  before the log, in float32, and drop the ``+1e-8``: every present ``log p_hat <= log(1 -
  holo_eps) < 0``, so the denominator is strictly negative, ``Holo_m`` lies in ``[0, 1]`` and the
  Holo-Confidences of a sample sum to ``n - 1`` (``n`` present). Between the bounds this equals
  the code's value up to the ``1e-8``. The clamp is on the Holo term only: Mono is the raw
  ``p_hat``, and the TCP loss sees the raw ``p_hat``. One present modality: ``Holo = 0``.
* Detaching [code]: the ConfidNets read detached features (their only training signal is the
  TCP regression; the encoders are trained by the cross-entropies), and the Co-Belief, RC and
  weights are detached: the fused CE trains the unimodal heads through ``f_m`` only.
* Relative calibration [code, with one deviation]: the code applies RC at test only
  (``pdf_test``) and selects its checkpoint on validation *without* it (``pdf_train``).
  Our method cannot tell validation from test, so ``calibration="eval"`` (default) applies it
  whenever the module is in eval mode, validation included; ``"never"`` and ``"always"`` (also
  in training) are options. ``DU`` uses the mean over classes as the code does (the ratio is the
  same with the paper's sum). Guard [ours]: where every present ``DU`` is 0 (all softmaxes
  exactly uniform) ``RC = 1`` (the code gives 0/0 there).
* ConfidNet weight decay: the code's Adam puts ``weight_decay`` (1 in both released shell
  scripts; 0 elsewhere) on two tensors only, ``ConfidNet_txt.0.weight`` and
  ``ConfidNet_img.1.weight`` (the first layer of one, the second of the other). Our trainer's
  optimiser is generic (one global ``weight_decay`` on every parameter, default 1e-4, as for
  every method), so the method adds the loss term ``confidnet_decay / 2 * sum ||W||^2`` over the
  chosen tensors, whose gradient ``confidnet_decay * W`` is what coupled L2 decay (Adam, SGD)
  adds: the same update as the code's Adam(weight_decay) on them, on top of the global decay.
  ``confidnet_decay_layers="first"`` (default [ours]) decays the first linear layer of every
  ConfidNet (the code's choice is tied to its two named modalities); ``"code"`` reproduces the
  code's pair for exactly two modalities (first modality's layer 0, second's layer 1); ``"all"``
  every ConfidNet linear weight. Training only (absent from validation losses).

Weight swaps (``has_dynamic_weights``; ``weights="uniform"`` trains the uniform twin: the
ConfidNets still train, the fusion uses ``1/n``). PDF's native weights already sum to 1 over the
present modalities, so :meth:`~robustfusion.methods.base.Method.swap_weights`'s result is fused
as is: ``uniform`` averages the present ``f_m``, ``oracle`` gives a corrupted modality weight 0.
``FusionOutput.weights`` reports the weights used; ``extras`` holds ``confidence`` (``p_hat``,
with gradient), ``holo``, ``co_belief`` and ``calibration`` (``RC``; 1 where not applied), ``[B, M]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfusion.accepts import Accepts, number
from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, MethodSpec, trained_weights_option
from robustfusion.modules.heads import UnimodalHeads
from robustfusion.registry import METHODS
from robustfusion.types import Batch, FusionOutput

#: When relative calibration applies: in eval mode (default), never, or always.
CALIBRATION_MODES = ("eval", "never", "always")
#: Which ConfidNet weights the decay term covers.
DECAY_LAYERS = ("first", "code", "all")
#: Activation between the ConfidNet's linear maps (``none``: the code's purely linear stack).
ACTIVATIONS = ("none", "relu")


def holo_confidence(confidence: Tensor, present: Tensor, eps: float = 1e-6) -> Tensor:
    """Holo-Confidence ``[B, M]``: ``sum_{j != m} log p_j / sum_j log p_j`` over present ``j``.

    ``confidence`` (``[B, M]``, in ``[0, 1]``) is clamped to ``[eps, 1 - eps]`` before the log and
    the arithmetic runs in float32, so the denominator is strictly negative wherever a modality
    is present (the guard against the code's 0 and ``-inf/-inf``). Absent modalities get 0.
    """
    mask = present.bool()
    log_p = torch.log(confidence.float().clamp(eps, 1.0 - eps)) * mask
    total = log_p.sum(dim=1, keepdim=True)
    safe = torch.where(total < 0, total, torch.full_like(total, -1.0))  # no present modality
    return (total - log_p) / safe * mask


def distribution_uniformity(logits: Tensor) -> Tensor:
    """``DU = mean_c |softmax(logits)_c - 1/C|`` ``[B]``: the distance from a uniform guess."""
    probs = torch.softmax(logits.float(), dim=1)
    return (probs - 1.0 / probs.shape[1]).abs().mean(dim=1)


def relative_calibration(uniformity: Tensor, present: Tensor) -> Tensor:
    """``RC_m = DU_m / max_{k present} DU_k`` ``[B, M]`` (1 where every present ``DU`` is 0).

    For two modalities this is the code's rule: 1 for the more certain one, ``DU_self /
    DU_other`` for the other.
    """
    mask = present.bool()
    du = uniformity.float() * mask
    reference = du.max(dim=1, keepdim=True).values
    ratio = du / reference.clamp_min(torch.finfo(du.dtype).tiny)
    return torch.where(reference > 0, ratio, torch.ones_like(ratio))


def co_belief_weights(scores: Tensor, present: Tensor) -> Tensor:
    """Softmax of ``scores`` ``[B, M]`` over the present modalities (absent: 0; none: a 0 row)."""
    mask = present.bool()
    masked = scores.float().masked_fill(~mask, float("-inf"))
    top = masked.max(dim=1, keepdim=True).values
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    exp = torch.exp(masked - top) * mask
    return exp / exp.sum(dim=1, keepdim=True).clamp_min(torch.finfo(exp.dtype).tiny)


class ConfidNet(nn.Module):
    """The code's TCP regressor: ``Linear(D, 2D), Linear(2D, D), Linear(D, 1), Sigmoid``.

    ``activation="relu"`` puts a ReLU after each of the first two linear maps [ours].
    """

    def __init__(self, dim: int, activation: str = "none") -> None:
        super().__init__()
        self.linears = nn.ModuleList(
            [nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim), nn.Linear(dim, 1)]
        )
        self.relu = activation == "relu"

    def forward(self, x: Tensor) -> Tensor:
        """``[B, D] -> [B]`` predicted probability of the true class."""
        for i, linear in enumerate(self.linears):
            x = linear(x)
            if self.relu and i < len(self.linears) - 1:
                x = torch.relu(x)
        return torch.sigmoid(x).squeeze(1)


@METHODS.register(
    "pdf",
    "Predictive Dynamic Fusion: Co-Belief (mono + holo confidence) weights, relative calibration",
)
class PDF(Method):
    """Options: ``tcp_weight`` (1), ``confidnet_decay`` (1.0, the released scripts' weight decay),
    ``confidnet_decay_layers`` (``first`` | ``code`` | ``all``), ``confidnet_activation``
    (``none`` code | ``relu``), ``holo_eps`` (1e-6), ``calibration`` (``eval`` | ``never`` |
    ``always``), ``weights`` (``learned`` | ``uniform``: the uniform twin)."""

    #: What each numeric option accepts (checked before anything is built or written).
    option_limits: ClassVar[dict[str, Accepts]] = {
        "tcp_weight": number(0.0, 1e3),
        "confidnet_decay": number(0.0, 1e3),
        "holo_eps": number(1e-7, 0.5, open_maximum=True),
    }

    has_dynamic_weights: ClassVar[bool] = True

    def __init__(
        self,
        spec: MethodSpec,
        tcp_weight: float = 1.0,
        confidnet_decay: float = 1.0,
        confidnet_decay_layers: str = "first",
        confidnet_activation: str = "none",
        holo_eps: float = 1e-6,
        calibration: str = "eval",
        weights: str = "learned",
    ) -> None:
        super().__init__(spec)
        self.trained_weights = trained_weights_option("pdf", weights)
        if tcp_weight < 0 or confidnet_decay < 0:
            raise ConfigError(
                f"pdf: tcp_weight and confidnet_decay must be >= 0, got {tcp_weight} and "
                f"{confidnet_decay}"
            )
        if not 1e-7 <= holo_eps < 0.5:
            raise ConfigError(
                f"pdf: holo_eps must be in [1e-7, 0.5) (the clamp of the confidences before the "
                f"log), got {holo_eps}"
            )
        if calibration not in CALIBRATION_MODES:
            raise ConfigError(
                f"pdf: calibration must be one of {', '.join(CALIBRATION_MODES)}, got "
                f"{calibration!r}"
            )
        if confidnet_decay_layers not in DECAY_LAYERS:
            raise ConfigError(
                f"pdf: confidnet_decay_layers must be one of {', '.join(DECAY_LAYERS)}, got "
                f"{confidnet_decay_layers!r}"
            )
        if confidnet_decay_layers == "code" and len(self.modalities) != 2:
            raise ConfigError(
                f"pdf: confidnet_decay_layers=code names the code's two ConfidNets but there are "
                f"{len(self.modalities)} modalities: use first or all"
            )
        if confidnet_activation not in ACTIVATIONS:
            raise ConfigError(
                f"pdf: confidnet_activation must be one of {', '.join(ACTIVATIONS)}, got "
                f"{confidnet_activation!r}"
            )
        self.tcp_weight = float(tcp_weight)
        self.confidnet_decay = float(confidnet_decay)
        self.confidnet_decay_layers = confidnet_decay_layers
        self.holo_eps = float(holo_eps)
        self.calibration = calibration
        self.heads = UnimodalHeads(spec.feature_dims, spec.num_classes)
        self.confidnets = nn.ModuleDict(
            {m: ConfidNet(int(spec.feature_dims[m]), confidnet_activation) for m in self.modalities}
        )

    def calibrating(self) -> bool:
        """Whether the next forward applies the relative calibration."""
        return self.calibration == "always" or (self.calibration == "eval" and not self.training)

    def decayed_weights(self) -> list[nn.Parameter]:
        """The ConfidNet weights the decay term covers (``confidnet_decay_layers``)."""
        nets = [self.confidnets[m] for m in self.modalities]
        if self.confidnet_decay_layers == "first":
            return [net.linears[0].weight for net in nets]
        if self.confidnet_decay_layers == "code":  # ConfidNet_txt.0.weight, ConfidNet_img.1.weight
            return [nets[0].linears[0].weight, nets[1].linears[1].weight]
        return [linear.weight for net in nets for linear in net.linears]

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        unimodal = self.heads(features)
        mask = torch.stack([present[m] for m in self.modalities], dim=1).bool()
        confidence = torch.stack(
            [self.confidnets[m](features[m].detach()) for m in self.modalities], dim=1
        )
        with torch.no_grad():
            mono = confidence.detach().float()
            holo = holo_confidence(mono, mask, self.holo_eps)
            co_belief = mono + holo
            if self.calibrating():
                uniformity = torch.stack(
                    [distribution_uniformity(unimodal[m].detach()) for m in self.modalities],
                    dim=1,
                )
                calibration = relative_calibration(uniformity, mask)
            else:
                calibration = torch.ones_like(co_belief)
            learned = co_belief_weights(co_belief * calibration, mask)
            weights = self.swap_weights(learned, present).to(mask.device)
        first = unimodal[self.modalities[0]]
        fuse = weights.to(first.dtype)
        logits = sum(unimodal[m] * fuse[:, i : i + 1] for i, m in enumerate(self.modalities))
        return FusionOutput(
            logits=logits,
            weights=weights,
            modalities=self.modalities,
            unimodal_logits=unimodal,
            extras={
                "confidence": confidence,
                "holo": holo,
                "co_belief": co_belief,
                "calibration": calibration,
            },
        )

    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        target = batch.target
        terms = {"ce": F.cross_entropy(output.logits, target)}
        unimodal_ce = output.logits.new_zeros(())
        tcp = output.logits.new_zeros(())
        confidence = output.extras["confidence"]
        for i, m in enumerate(self.modalities):
            seen = batch.present[m].to(output.logits.dtype)
            count = seen.sum().clamp_min(1.0)
            logits = output.unimodal_logits[m]
            per_sample = F.cross_entropy(logits, target, reduction="none")
            unimodal_ce = unimodal_ce + (per_sample * seen).sum() / count
            true_prob = torch.softmax(logits.detach(), dim=1).gather(1, target[:, None])[:, 0]
            tcp = tcp + ((confidence[:, i] - true_prob).abs() * seen).sum() / count
        terms["unimodal_ce"] = unimodal_ce
        terms["tcp"] = self.tcp_weight * tcp
        if self.training and self.confidnet_decay > 0:
            penalty = sum(w.pow(2).sum() for w in self.decayed_weights())
            terms["confidnet_decay"] = 0.5 * self.confidnet_decay * penalty
        return terms
