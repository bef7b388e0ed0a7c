"""MMPareto: Pareto integration of multimodal and unimodal gradients (Wei & Hu, ICML 2024).

"MMPareto: Boosting Multimodal Learning with Innocent Unimodal Assistance", arXiv 2405.17730;
code: github.com/GeWu-Lab/MMPareto_ICML2024 (``code/MMPareto.py``, ``code/min_norm_solvers.py``).
Tags as in METHODS.md: [paper], [code], [ours]. Equation numbers are not cited: the paper's text
was not at hand; every formula below is checked against the released code.

Model [code]: the encoders, a multimodal head on the fused features and one linear unimodal head
per modality. Losses (Alg. 1 [paper]; ``loss_mm``, ``loss_a``, ``loss_v`` [code]): the
cross-entropy of the fused logits ``L_m`` and of each unimodal head ``L_u^k``; the heads learn from
``L_m + sum_k L_u^k``. Each encoder ``k`` sees only two of these losses, ``L_m`` and its own
``L_u^k``, and MMPareto integrates their gradients ``g_m`` and ``g_u`` on the encoder's parameters:

1. Direction [paper Alg. 1; code]: if ``cos(g_m, g_u) > 0`` (cosine over the encoder's whole
   flattened gradient; the test is ``<g_m, g_u> > 0``) the weights are ``alpha_m = alpha_u = 1/2``;
   else the two-task MGDA min-norm weights ``min_a ||a g_m + (1 - a) g_u||^2`` (the paper's Pareto
   integration), solved in closed form as the code's ``MinNormSolver._min_norm_element_from2``
   (Sener & Koltun 2018, Alg. 1), clamps included (``a = 0.999`` where
   ``<g_m, g_u> >= ||g_m||^2``, ``0.001`` where ``<g_m, g_u> >= ||g_u||^2``: only reached when a
   gradient is zero). Combined ``h = 2 (alpha_m g_m + alpha_u g_u)``, which is ``g_m + g_u``
   without conflict.
2. Magnitude [code]: every parameter tensor ``p`` of the encoder gets
   ``h'_p = gamma * max(1, ||g_m,p + g_u,p|| / ||h_p||) * h_p`` with ``gamma = 1.5``: ``h``
   rescaled to the norm of the summed gradient where it is shorter, then enlarged by ``gamma``
   (the code's ``diff = three_norm / new_norm``, per parameter tensor, not per encoder).

Generalisation to ``M`` modalities [ours]: each encoder stays a two-task problem (``L_m`` and its
own ``L_u^k``: the other unimodal losses do not reach it), as the code does for its two encoders.
Encoders are found from the autograd graph: the parameters upstream of modality ``k``'s features
form its encoder; parameters upstream of several modalities' features (one encoder shared by
modalities ``S``) form one more two-task problem whose unimodal gradient is that of
``sum_{k in S} L_u^k``. Absent modalities: ``L_u^k`` averages over the samples where ``k`` is
present (0 when none is). Weights in :class:`FusionOutput` are uniform (no per-sample weights).

How the gradient is written [ours]. The code runs four backward passes per step, three with
``retain_graph=True``, and overwrites ``param.grad`` afterwards; under DistributedDataParallel
the reducer's hooks fire on every pass ("Expected to mark a variable ready only once") and the
overwritten gradients are not the averaged ones. Here :meth:`MMPareto.losses` computes ``g_m``
and ``g_u`` with ``torch.autograd.grad`` on the encoder parameters only (two passes that do not
touch ``.grad`` nor DDP's hooks), combines them, and returns a zero-valued loss term ``mmpareto``
whose backward adds ``h' - (g_m + g_u)`` to each encoder parameter. The trainer's single final
backward of the summed losses (the only one DDP's reducer sees) therefore leaves exactly the
MMPareto gradient ``h'`` on the encoders and ``dL/dtheta`` on the heads; it works in any plain
loop (``loss.backward()``), with loss scaling (mixed precision) and gradient clipping, and needs
no ``after_backward``. Under DDP, ``sync="global"`` (default) averages ``g_m`` and ``g_u`` over
the processes first, so every process integrates the gradients of the global batch (what the
code's ``DataParallel`` computes) and DDP's average of the identical results is that gradient;
``sync="local"`` integrates each process's own gradients and lets DDP average the results
(cheaper: no extra all-reduce; not the same algorithm). Per-loss gradients are computed without
the loss scale of ``16-mixed`` precision.

Deviations and traps of the released code:

* Division by zero [ours]: where ``h_p = 0`` the code's ``diff`` is ``inf`` (NaN gradient) or
  ``0/0`` (gradient 0); here ``h_p = 0`` stays 0 (no direction to rescale).
* Learning-rate schedule: the code creates ``StepLR(30, 0.1)`` and never steps it, so it trains
  at a constant rate; so do we by default. ``step_lr=True`` [ours] applies the intended schedule
  (x0.1 from 60% of the epochs: 30 of the code's 50).
* Model selection: the code keeps the epoch with the best *test* accuracy; our trainer selects on
  the validation split.
* Heads: the code's multimodal head is one linear layer on the concatenated features; here it is
  the project's fusion head (``spec.fusion``) and a linear classifier, as in every method.
* Recipe (``recipe="released"``, default; :meth:`MMPareto.training_defaults`): SGD, lr 2e-3,
  momentum 0.9, weight decay 1e-4 (the code's defaults and CREMA-D script; batch 64 and 50
  epochs there). Under Adam (``recipe="none"`` keeps the global defaults) ``gamma`` is largely
  divided out again; the direction part still acts.

Cost: three backward passes through each encoder per step (``g_m``, ``g_u``, the final one), as
with the code's four backward calls (the fourth, another modality's unimodal loss, does not reach
the encoder); the integration (a few vector operations per encoder); with ``sync="global"`` under
DDP, one all-reduce of twice the encoder gradients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfusion.accepts import Accepts, number
from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, MethodSpec, uniform_weights
from robustfusion.modules.distributed import all_reduce_mean, is_distributed
from robustfusion.modules.fusion import build_fusion
from robustfusion.modules.heads import StackedUnimodalHeads
from robustfusion.registry import METHODS
from robustfusion.types import Batch, FusionOutput

#: Training settings of the released code (``MMPareto.py``: SGD, lr 2e-3, momentum 0.9, weight
#: decay 1e-4); ``none`` keeps the global defaults.
RECIPES: dict[str, dict[str, Any]] = {
    "released": {"optimizer": "sgd", "lr": 2e-3, "momentum": 0.9, "weight_decay": 1e-4},
    "none": {},
}
#: Which gradients are integrated under DDP (module docstring).
SYNCS = ("global", "local")
#: The code's clamps of the two-task min-norm weight (``MinNormSolver._min_norm_element_from2``).
CLAMP_HIGH, CLAMP_LOW = 0.999, 0.001
#: Fraction of the epochs after which ``step_lr`` divides the learning rate by 10 (30 of 50).
STEP_AT = 0.6
_FEATURE_KEY = "mmpareto.feature."


# --------------------------------------------------------------------------- the formulas
def min_norm_weight(v11: Tensor, v12: Tensor, v22: Tensor) -> Tensor:
    """Weight ``c`` of ``g1`` in ``min_{c in [0, 1]} ||c g1 + (1 - c) g2||^2`` from the inner
    products ``v11 = <g1, g1>``, ``v12 = <g1, g2>``, ``v22 = <g2, g2>`` (the code's
    ``_min_norm_element_from2``: 0.999 where ``v12 >= v11``, 0.001 where ``v12 >= v22``, else
    ``(v22 - v12) / (v11 + v22 - 2 v12)``)."""
    denominator = (v11 + v22 - 2 * v12).clamp_min(torch.finfo(v11.dtype).tiny)
    interior = (v22 - v12) / denominator
    return torch.where(
        v12 >= v11,
        torch.full_like(interior, CLAMP_HIGH),
        torch.where(v12 >= v22, torch.full_like(interior, CLAMP_LOW), interior),
    )


def pareto_weight(v11: Tensor, v12: Tensor, v22: Tensor) -> Tensor:
    """``alpha_m``, the weight of the multimodal gradient (``alpha_u = 1 - alpha_m``): 1/2 where
    ``cos(g_m, g_u) > 0`` (``v12 > 0``), else :func:`min_norm_weight` (Alg. 1)."""
    return torch.where(v12 > 0, torch.full_like(v12, 0.5), min_norm_weight(v11, v12, v22))


def rescale(combined: Sequence[Tensor], reference: Sequence[Tensor], gamma: float) -> list[Tensor]:
    """Per tensor: ``gamma * max(1, ||reference|| / ||combined||) * combined``; a zero
    ``combined`` stays zero (the code divides by its norm: NaN there)."""
    norms = torch.stack(torch._foreach_norm(list(combined)))
    wanted = torch.stack(torch._foreach_norm(list(reference)))
    ratio = wanted / norms
    usable = (norms > 0) & torch.isfinite(ratio)
    scale = gamma * torch.where(usable, ratio.clamp_min(1.0), torch.ones_like(ratio))
    return [h * s for h, s in zip(combined, scale.unbind(), strict=True)]


def integrate(
    multimodal: Sequence[Tensor], unimodal: Sequence[Tensor], gamma: float = 1.5
) -> tuple[list[Tensor], Tensor, Tensor]:
    """MMPareto's gradient for one encoder from its per-tensor gradients ``g_m`` and ``g_u``.

    Returns ``(gradients, cos, alpha_m)``: the new gradient of every tensor (direction by
    :func:`pareto_weight` over the whole encoder, magnitude by :func:`rescale` per tensor), the
    cosine of ``g_m`` and ``g_u`` and the multimodal weight.
    """
    g_m = torch.cat([g.reshape(-1) for g in multimodal])
    g_u = torch.cat([g.reshape(-1) for g in unimodal])
    v11, v12, v22 = g_m @ g_m, g_m @ g_u, g_u @ g_u
    alpha = pareto_weight(v11, v12, v22)
    cos = v12 / (v11.sqrt() * v22.sqrt()).clamp_min(1e-8)
    a_m, a_u = 2 * alpha, 2 * (1 - alpha)
    combined = [a_m * m + a_u * u for m, u in zip(multimodal, unimodal, strict=True)]
    reference = [m + u for m, u in zip(multimodal, unimodal, strict=True)]
    return rescale(combined, reference, gamma), cos, alpha


# --------------------------------------------------------------------------- autograd helpers
def upstream_parameters(tensor: Tensor) -> list[nn.Parameter]:
    """The parameters (leaves requiring grad) that ``tensor`` was computed from, in a fixed
    (depth-first) order."""
    found: dict[int, nn.Parameter] = {}
    seen: set[Any] = set()
    stack = [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)  # AccumulateGrad: a leaf
        if isinstance(variable, nn.Parameter):
            found.setdefault(id(variable), variable)
            continue
        stack.extend(child for child, _ in reversed(node.next_functions))
    return list(found.values())


def encoder_groups(
    features: Mapping[str, Tensor], modalities: Sequence[str]
) -> list[tuple[tuple[str, ...], list[nn.Parameter]]]:
    """Parameters upstream of the features, grouped by the modalities whose features they feed:
    ``(("a",), encoder a's parameters)``, ..., and ``(("a", "b"), shared ones)``."""
    owners: dict[int, list[str]] = {}
    params: dict[int, nn.Parameter] = {}
    for m in modalities:
        for p in upstream_parameters(features[m]):
            owners.setdefault(id(p), []).append(m)
            params[id(p)] = p
    groups: dict[tuple[str, ...], list[nn.Parameter]] = {}
    for key, p in params.items():
        groups.setdefault(tuple(owners[key]), []).append(p)
    return list(groups.items())


class _AddGradient(torch.autograd.Function):
    """Zero in the forward pass; its backward adds ``offsets[i] * grad`` to ``params[i]``'s
    gradient (``grad`` is 1, or the loss scale under mixed precision)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, offsets: list[Tensor], *params: Tensor
    ) -> Tensor:
        ctx.offsets = offsets  # type: ignore[attr-defined]
        return params[0].new_zeros((), dtype=offsets[0].dtype)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor
    ) -> tuple[Tensor | None, ...]:
        offsets = ctx.offsets  # type: ignore[attr-defined]
        return (None, *(offset * grad.to(offset.dtype) for offset in offsets))


# --------------------------------------------------------------------------- the method
@METHODS.register(
    "mmpareto",
    "MMPareto: Pareto integration of multimodal and unimodal gradients per encoder (any M); "
    "options gamma, sync=global|local, recipe=released|none, step_lr",
)
class MMPareto(Method):
    """Fusion head + unimodal heads; the encoders learn from MMPareto's integrated gradient.

    Args:
        spec: the method spec.
        gamma: the magnitude enlargement (1.5 in the code).
        sync: ``global`` (default: under DDP integrate the gradients of the global batch) or
            ``local`` (each process integrates its own; DDP averages the results).
        recipe: ``released`` (default: SGD, lr 2e-3, momentum 0.9, weight decay 1e-4 as training
            defaults) or ``none``.
        step_lr: divide the learning rate by 10 from 60% of the epochs (the code's ``StepLR(30,
            0.1)`` of 50 epochs, which it never steps); default False, as the code trains.
    """

    #: What each numeric option accepts (checked before anything is built or written).
    option_limits: ClassVar[dict[str, Accepts]] = {
        "gamma": number(0.0, 1e3, open_minimum=True),
    }

    def __init__(
        self,
        spec: MethodSpec,
        gamma: float = 1.5,
        sync: str = "global",
        recipe: str = "released",
        step_lr: bool = False,
    ) -> None:
        super().__init__(spec)
        if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not gamma > 0:
            raise ConfigError(f"mmpareto: gamma must be a number > 0, got {gamma!r}")
        if sync not in SYNCS:
            raise ConfigError(f"mmpareto: unknown sync {sync!r}; choose one of {', '.join(SYNCS)}")
        if recipe not in RECIPES:
            raise ConfigError(
                f"mmpareto: unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}"
            )
        if not isinstance(step_lr, bool):
            raise ConfigError(f"mmpareto: step_lr must be true or false, got {step_lr!r}")
        self.gamma = float(gamma)
        self.sync = sync
        self.recipe = recipe
        self.step_lr = step_lr
        self.fusion = build_fusion(spec.fusion, spec.feature_dims, spec.hidden_dim)
        self.classifier = nn.Linear(spec.hidden_dim, spec.num_classes)
        self.heads = StackedUnimodalHeads(spec.feature_dims, spec.num_classes)
        #: Last step's ``(encoder names, cos [E], alpha_m [E])`` for :meth:`logged_values`.
        self._last: tuple[list[str], Tensor, Tensor] | None = None

    @classmethod
    def training_defaults(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``recipe="released"`` (default): SGD, lr 2e-3, momentum 0.9, weight decay 1e-4."""
        return dict(RECIPES.get(str(options.get("recipe", "released")), {}))

    def lr_scale(self, epoch: int, max_epochs: int) -> float:
        """0.1 from ``round(0.6 E)`` on with ``step_lr``, else 1 (the code's constant rate)."""
        return 0.1 if self.step_lr and epoch >= round(STEP_AT * max_epochs) else 1.0

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        logits = self.classifier(self.fusion(features, present))
        pooled = {m: _pool(features[m]) for m in self.modalities}
        stacked = self.heads(pooled)  # [M, B, C]
        extras: dict[str, Tensor] = {}
        if self.training and torch.is_grad_enabled():  # losses() finds the encoders from them
            extras = {_FEATURE_KEY + m: features[m] for m in self.modalities}
        return FusionOutput(
            logits=logits,
            weights=uniform_weights(present, self.modalities),
            modalities=self.modalities,
            unimodal_logits={m: stacked[i] for i, m in enumerate(self.modalities)},
            extras=extras,
        )

    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        """``ce`` (``L_m``), ``unimodal_ce`` (``sum_k L_u^k``) and, in training, the zero-valued
        ``mmpareto`` whose backward turns the encoders' gradient into MMPareto's."""
        multimodal = F.cross_entropy(output.logits, batch.target)
        unimodal = self._unimodal_loss(output, batch)
        terms = {"ce": multimodal, "unimodal_ce": unimodal}
        if self.training and torch.is_grad_enabled() and multimodal.requires_grad:
            offset = self._gradient_offset(multimodal, unimodal, output)
            if offset is not None:
                terms["mmpareto"] = offset
        return terms

    def _unimodal_loss(self, output: FusionOutput, batch: Batch) -> Tensor:
        """``sum_k`` of the cross-entropy of head ``k`` averaged over the samples where ``k`` is
        present (one batched call)."""
        logits = torch.stack([output.unimodal_logits[m] for m in self.modalities])
        count = logits.shape[0]
        per_sample = F.cross_entropy(
            logits.flatten(0, 1), batch.target.repeat(count), reduction="none"
        )
        with torch.no_grad():
            mask = torch.stack([batch.present[m] for m in self.modalities]).to(per_sample.dtype)
            weight = (mask / mask.sum(dim=1, keepdim=True).clamp_min(1.0)).flatten()
        return torch.dot(per_sample, weight)

    def _gradient_offset(
        self, multimodal: Tensor, unimodal: Tensor, output: FusionOutput
    ) -> Tensor | None:
        """The ``mmpareto`` term: per-loss gradients, integration, offset from their sum."""
        keys = [_FEATURE_KEY + m for m in self.modalities]
        if any(key not in output.extras for key in keys):
            raise ConfigError("mmpareto: losses() needs the training output of MMPareto.forward")
        features = {m: output.extras[key] for m, key in zip(self.modalities, keys, strict=True)}
        groups = encoder_groups(features, self.modalities)
        params = [p for _, members in groups for p in members]
        if not params:
            return None
        grads_m = _grads(multimodal, params)
        grads_u = _grads(unimodal, params)
        local = [m + u for m, u in zip(grads_m, grads_u, strict=True)]
        if self.sync == "global" and is_distributed():
            grads_m, grads_u = _averaged(grads_m, grads_u)
        offsets: list[Tensor] = []
        names, cosines, alphas = [], [], []
        start = 0
        for owners, members in groups:
            stop = start + len(members)
            new, cos, alpha = integrate(grads_m[start:stop], grads_u[start:stop], self.gamma)
            offsets.extend(h - s for h, s in zip(new, local[start:stop], strict=True))
            names.append("+".join(owners))
            cosines.append(cos)
            alphas.append(alpha)
            start = stop
        self._last = (names, torch.stack(cosines).detach(), torch.stack(alphas).detach())
        return _AddGradient.apply(offsets, *params).to(multimodal.dtype)

    def logged_values(self) -> dict[str, float]:
        """Per encoder: ``mmpareto/cos_<k>`` (cosine of ``g_m`` and ``g_u``) and
        ``mmpareto/alpha_<k>`` (weight of ``g_m``; 0.5 without conflict)."""
        if self._last is None:
            return {}
        names, cosines, alphas = self._last
        values = torch.stack([cosines, alphas]).float().tolist()  # one device sync
        out = {f"mmpareto/cos_{n}": float(c) for n, c in zip(names, values[0], strict=True)}
        out.update({f"mmpareto/alpha_{n}": float(a) for n, a in zip(names, values[1], strict=True)})
        return out


def _grads(loss: Tensor, params: list[nn.Parameter]) -> list[Tensor]:
    """``d loss / d p`` for every ``p`` (zeros where ``loss`` does not reach it); the graph is
    kept for the final backward and no ``.grad`` (nor DDP hook) is touched."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def _averaged(first: list[Tensor], second: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """Both gradient lists averaged over the processes (one all-reduce)."""
    flat = torch.cat([g.reshape(-1) for g in (*first, *second)])
    all_reduce_mean(flat)
    pieces = flat.split([g.numel() for g in (*first, *second)])
    out = [piece.view_as(g) for piece, g in zip(pieces, (*first, *second), strict=True)]
    return out[: len(first)], out[len(first) :]


def _pool(feature: Tensor) -> Tensor:
    """Spatial features ``[B, C, ...]`` -> ``[B, C]`` (global average pool); vectors unchanged."""
    return feature.flatten(2).mean(dim=2) if feature.dim() > 2 else feature
