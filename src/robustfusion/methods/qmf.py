"""QMF: Quality-aware Multimodal Fusion (Zhang et al., ICML 2023), METHODS.md §4.

Every modality has a unimodal head ``f_m``; its confidence is the negative energy
``c_m = scale * T logsumexp(f_m / T)`` (the paper's energy score, ``scale = 1/10`` and ``T = 1`` as
in the authors' code). Fused logits ``sum_m c_m f_m`` over present modalities, with ``c_m``
detached during training (code). Loss = CE(fused) + sum_m CE(f_m) + ``rank_weight`` * sum_m
ranking regulariser, which orders confidences by each sample's accumulated unimodal training loss
(the code's ``History``; see :func:`robustfusion.modules.energy.ranking_loss` for the margin sign:
the paper's form by default, ``margin_sign=-1`` for the code's).

The history is a buffer ``[M, N]`` indexed by ``batch.index`` (``N = num_train_samples``, default
65536 slots, enough for every dataset here; unused slots are ignored by the normalisation). Margins
are normalised by the spread of the accumulated losses over the samples seen so far, ``max h - min
h`` [ours]: the code divides by ``max_correctness - min h`` with ``max_correctness`` an epoch
counter (from CRL, where ``h`` counts 0/1 correct predictions); with accumulated *losses* that
denominator can be <= 0 in the first epochs, which made margins explode (rank loss ~1e12 in our
first runs). ``weights`` for reports are the present modalities' confidences clamped at 0 and
normalised (the fusion itself uses the raw ``c_m``). Under DDP every process keeps the history of
the samples it sees (not all-reduced: the indices differ).

Weight swaps (``has_dynamic_weights``; ``weights="uniform"`` trains the uniform twin). QMF's native
weights are the confidences ``c_m`` that multiply each unimodal logit vector. The normalised
weights ``w = max(c, 0) / sum max(c, 0)`` pass through
:meth:`~robustfusion.methods.base.Method.swap_weights`; a swapped ``w'`` is mapped back as
``c'_m = w'_m * sum_{k present} c_k`` (the row's total confidence is kept). So ``uniform`` replaces
every present ``c_m`` by the sample's mean ``c``, and ``oracle`` sets a corrupted modality's
``c_m = 0`` (its logits drop out: the lowest weight the method allows) while the clean ones share
the total. In ``learned`` mode the raw ``c_m`` are used unchanged. ``FusionOutput.weights`` reports
``w'`` (for a learned row, ``w``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from robustfusion.accepts import Accepts, integer, number
from robustfusion.errors import ConfigError, DataError
from robustfusion.methods.base import (
    Method,
    MethodSpec,
    normalise_weights,
    trained_weights_option,
)
from robustfusion.modules.energy import energy_confidence, ranking_loss
from robustfusion.modules.heads import UnimodalHeads
from robustfusion.registry import METHODS
from robustfusion.types import Batch, FusionOutput

#: History slots when ``num_train_samples`` is not given: a fixed size, so that checkpoints reload
#: into a freshly built model; larger training sets must give ``num_train_samples``.
DEFAULT_HISTORY_SIZE = 65536


@METHODS.register(
    "qmf", "Quality-aware Multimodal Fusion: energy-score confidence weights, history ranking loss"
)
class QMF(Method):
    """Options: ``rank_weight`` (1), ``temperature`` (1), ``scale`` (0.1), ``margin_sign`` (1 paper,
    -1 code), ``num_train_samples`` (None: 65536 history slots), ``weights`` (``learned`` |
    ``uniform``: the uniform twin)."""

    #: What each numeric option accepts (checked before anything is built or written).
    option_limits: ClassVar[dict[str, Accepts]] = {
        "rank_weight": number(0.0, 1e3),
        "temperature": number(0.0, 1e3, open_minimum=True),
        "scale": number(0.0, 1e3, open_minimum=True),
        "margin_sign": number(-1.0, 1.0),
        "num_train_samples": integer(1, 10**9),
    }

    has_dynamic_weights: ClassVar[bool] = True

    def __init__(
        self,
        spec: MethodSpec,
        rank_weight: float = 1.0,
        temperature: float = 1.0,
        scale: float = 0.1,
        margin_sign: float = 1.0,
        num_train_samples: int | None = None,
        weights: str = "learned",
    ) -> None:
        super().__init__(spec)
        self.trained_weights = trained_weights_option("qmf", weights)
        if temperature <= 0 or scale <= 0:
            raise ConfigError("qmf: temperature and scale must be > 0")
        if margin_sign not in (1, -1, 1.0, -1.0):
            raise ConfigError(f"qmf: margin_sign must be 1 (paper) or -1 (code), got {margin_sign}")
        self.rank_weight = float(rank_weight)
        self.temperature = float(temperature)
        self.scale = float(scale)
        self.margin_sign = float(margin_sign)
        self.heads = UnimodalHeads(spec.feature_dims, spec.num_classes)
        size = int(num_train_samples or DEFAULT_HISTORY_SIZE)
        if size < 1:
            raise ConfigError(f"qmf: num_train_samples must be >= 1, got {num_train_samples}")
        self.register_buffer("history", torch.zeros(len(self.modalities), size))
        self.register_buffer("seen", torch.zeros(size, dtype=torch.bool))

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        unimodal = self.heads(features)
        confidence = torch.stack(
            [energy_confidence(unimodal[m], self.temperature, self.scale) for m in self.modalities],
            dim=1,
        )
        mask = torch.stack([present[m] for m in self.modalities], dim=1).to(confidence.dtype)
        native = (confidence.detach() if self.training else confidence) * mask
        learned = normalise_weights(confidence.detach().clamp_min(0.0), present, self.modalities)
        if self.effective_weight_mode() == "learned":
            fusion_weight, weights = native, learned
        else:
            weights = self.swap_weights(learned, present)
            fusion_weight = weights * native.sum(dim=1, keepdim=True)
        logits = sum(
            unimodal[m] * fusion_weight[:, i : i + 1] for i, m in enumerate(self.modalities)
        )
        return FusionOutput(
            logits=logits,
            weights=weights,
            modalities=self.modalities,
            unimodal_logits=unimodal,
            extras={"confidence": confidence},
        )

    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        target = batch.target
        terms = {"ce": F.cross_entropy(output.logits, target)}
        unimodal_ce = output.logits.new_zeros(())
        rank = output.logits.new_zeros(())
        for i, m in enumerate(self.modalities):
            seen = batch.present[m]
            per_sample = F.cross_entropy(output.unimodal_logits[m], target, reduction="none")
            unimodal_ce = unimodal_ce + (per_sample * seen).sum() / seen.sum().clamp_min(1)
            if not self.training:
                continue  # the history indexes training samples: no ranking term elsewhere
            self._update_history(i, batch.index, per_sample.detach(), seen)
            if self.rank_weight > 0:
                history = self.history[i, batch.index]
                seen_history = self.history[i][self.seen]
                span = seen_history.max() - seen_history.min()
                rank = rank + ranking_loss(
                    output.extras["confidence"][:, i], history, span, seen, self.margin_sign
                )
        terms["unimodal_ce"] = unimodal_ce
        if self.training and self.rank_weight > 0:
            terms["rank"] = self.rank_weight * rank
        return terms

    @torch.no_grad()
    def _update_history(self, i: int, index: Tensor, loss: Tensor, seen: Tensor) -> None:
        """Accumulate each sample's unimodal loss (the code's ``correctness_update``)."""
        if index.numel() and int(index.max()) >= self.history.shape[1]:
            raise DataError(
                f"qmf: sample index {int(index.max())} exceeds the history size "
                f"{self.history.shape[1]}: set --method-option qmf.num_train_samples=N (the "
                "training-set size)"
            )
        self.history[i].index_add_(0, index, (loss * seen).to(self.history.dtype))
        self.seen[index] |= seen
