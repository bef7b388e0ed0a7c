"""ShaSpec: Shared-Specific feature modelling (Wang et al., CVPR 2023, arXiv 2307.14126).

Every present modality ``m`` gets a *shared* feature ``r_m`` (one network for all modalities) and
a *specific* feature ``s_m`` (one network per modality). They are fused residually [paper, the
"residual feature fusion"; code: ``CompositionalLayer``, one layer shared by all modalities]::

    h_m = r_m + W_proj [r_m ; s_m]                      (W_proj: Linear(2d, d), no bias [code])

An absent modality has no features of its own; its slot is filled from the shared space of the
sample's present modalities::

    h_j = mean_{i present} r_i                          fill="mean" (default) [paper]
    h_j = r_{first present}                             fill="first" [code]

The ``h`` of all modalities, in modality order, are concatenated and classified (the paper's
decoder; here ``Linear(M·d, hidden) → ReLU → Linear(hidden, C)`` [ours]). Training minimises
[paper: ``L_task + α L_dao + β L_dco``; code ``train_SS.py``: α = 0.1, β = 0.02]::

    CE(logits) + alpha · L_dao + beta · L_dco
    L_dao = Σ_{(i,j) ∈ pairs} mean_b mean_d |r_i − r_j|     distribution alignment [code: L1Loss]
    L_dco = mean_{b,m} CE(D(s_m), m)                      domain classification, D: Linear(d, M)

``pairs`` (option ``pairs``): ``cycle`` [code] links each modality to the next, ``(0,1), (1,2),
…, (M−1,0)`` (for M = 2 the single pair ``(0,1)``: the code's cycle written for M = 4 would count
it twice); ``all`` every unordered pair (the code's commented-out extra terms make the M = 4
cycle into all six pairs).

Training with missing modalities [code: ``--mode=random``]: in :meth:`ShaSpec.prepare_batch`
each sample keeps ``k ~ U{1..n}`` of its ``n`` present modalities, a uniformly random subset
(``missing_training="subset"``, the code's ``random.randint(1, 4)`` and ``random.sample``);
``independent`` drops each modality with probability ``p`` instead (as ``modality_dropout``),
``none`` never drops. Draws come from the :mod:`robustfusion.rng` stream ``(seed, "shaspec-drop",
"train", epoch)`` at the sample index (``independent`` uses modality dropout's stream).

Decisions, and where we depart from the authors:

* **Shared encoder** [departure]. The paper's shared encoder is one network applied to every
  modality's raw input, possible only when the inputs have the same shape (BraTS: four MRI
  volumes). Our encoders are built per modality by the trainer and inputs differ in shape, so
  the split happens on the encoder features ``e_m`` (sizes ``D_m``): ``r_m = T(A_m e_m)`` with a
  per-modality stem ``A_m: Linear(D_m, d)`` and a shared trunk ``T: ReLU → Linear(d, d) → ReLU``
  (the natural generalisation to vectors of different sizes), and ``s_m = ReLU(S_m e_m)`` with
  ``S_m: Linear(D_m, d)``. Both branches therefore share the modality's encoder; only the heads
  are shared / specific. ``d`` is ``shared_dim`` (default ``hidden_dim``). ``spec.fusion``
  (``--fusion``) is ignored: ShaSpec fuses by concatenation.
* **Fill of a missing modality** (``fill``). The code takes the shared feature of the *first*
  available modality (``general_shared_ft = shared_ft[mode_split[0]]``; the average is written
  next to it and commented out). The paper's text describes the average of the available
  modalities' shared features (as its readers do: billhhh/ShaSpec issue #4, which the authors
  answered without contesting it). Paper and code disagree, so the paper's average is the
  default (METHODS.md rule) and the code's choice is ``fill="first"``: the first present modality
  *in modality order*, per sample (the code's evaluation behaviour; in its random training mode
  ``mode_split[0]`` is the first one *drawn*, a uniformly random available modality). The fill is
  per sample (the code fills per batch: its batches hold one volume).
* **Auxiliary losses on absent modalities** (``aux_losses``). The code computes both L_dao and
  L_dco on every modality, the missing ones included, i.e. on features of zeroed inputs (the
  returned ``mode_split`` is never used by the loss). We compute them on present modalities only
  (``aux_losses="present"``, default): L_dao over the samples where both modalities of a pair are
  present, L_dco over the present (sample, modality) rows. This is what the paper's objective
  describes and what its readers expected (issue #4); the features of a zeroed input carry no
  information about the sample, and aligning them would pull the shared space towards the
  encoder's response to zeros. ``aux_losses="all"`` reproduces the code. With every modality
  present both are identical to the code.
* **Full-modality warm-up and the last epoch** (``warmup``, default 0.3) [code]. The authors'
  ``run.sh`` trains two runs: 80k iterations on full modalities, then 180k with ``--mode=random``
  from that checkpoint, keeping the *final* model (``train_only``, ``final.pth``). The default
  reproduces that protocol: the first 30 % of the epochs on full modalities, and the method's
  recipe keeps the last epoch (``selection: last``, as ``--selection last``) whenever ``warmup``
  is above 0. ``warmup=0`` [ours] drops the warm-up and leaves the selection to the run's
  settings (``best_val``). The two are not mixed by default because our best-validation
  selection sees only the *clean* validation split, which cannot see robustness to missing
  modalities: on mfeat (30 epochs, 3 seeds, ``target all``) ``warmup=0.3`` with ``best_val``
  selected the first epochs after the warm-up on two seeds and lost 13 points at 80 % missing;
  ``warmup=0.3`` with the last epoch (87.3 %) was as good as ``warmup=0`` (85.5 %)
  (docs/methods.md).
* **No normalisation layer** [ours]. The code uses InstanceNorm at batch size 1, which needed a
  patched torch (the authors' README asks users to delete torch's batch-size check). The heads
  here have none (Linear and ReLU only), so any batch size, 1 included, works in training and
  evaluation.
* **Weights**: uniform over the present modalities (absent 0, rows sum to 1); ShaSpec has no
  per-sample modality weights, so ``evaluate --weights`` does not change it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustfusion.accepts import Accepts, integer, number
from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, MethodSpec, uniform_weights
from robustfusion.methods.modality_dropout import drop_modalities
from robustfusion.registry import METHODS
from robustfusion.rng import stream
from robustfusion.types import Batch, FusionOutput

FILLS = ("mean", "first")
AUX_LOSSES = ("present", "all")
PAIRS = ("cycle", "all")
MISSING_TRAINING = ("subset", "independent", "none")


def fill_missing(shared: Tensor, present: Tensor, mode: str = "mean") -> Tensor:
    """The feature ``[B, d]`` that replaces an absent modality: from the present shared features.

    Args:
        shared: ``[B, M, d]`` shared features ``r``.
        present: ``BoolTensor[B, M]``.
        mode: ``mean`` (the average over the present modalities) or ``first`` (the first present
            modality in modality order). A sample with no present modality gets zeros.
    """
    mask = present.to(shared.dtype).unsqueeze(-1)
    if mode == "mean":
        return (shared * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
    if mode == "first":
        # argmax returns the first maximum: the first present column (0 when none is present)
        first = present.to(torch.int8).argmax(dim=1)
        picked = shared[torch.arange(shared.shape[0], device=shared.device), first]
        return picked * present.any(dim=1, keepdim=True).to(shared.dtype)
    raise ValueError(f"unknown fill {mode!r}")


def alignment_pairs(count: int, pairs: str = "cycle") -> list[tuple[int, int]]:
    """The modality pairs ``(i, j)`` of the distribution-alignment loss (see the module docstring)."""
    if count < 2:
        return []
    if pairs == "all":
        return [(i, j) for i in range(count) for j in range(i + 1, count)]
    if pairs == "cycle":
        if count == 2:
            return [(0, 1)]
        return [(i, (i + 1) % count) for i in range(count)]
    raise ValueError(f"unknown pairs {pairs!r}")


def alignment_loss(shared: Tensor, valid: Tensor, pairs: list[tuple[int, int]]) -> Tensor:
    """L_dao: ``Σ_{(i,j)} mean_{b valid for i and j} mean_d |r_i − r_j|`` (a pair with no valid
    sample adds 0). ``valid`` is ``BoolTensor[B, M]``; all ``True`` gives the code's ``L1Loss``."""
    total = shared.new_zeros(())
    for i, j in pairs:
        both = (valid[:, i] & valid[:, j]).to(shared.dtype)
        per_sample = (shared[:, i] - shared[:, j]).abs().mean(dim=-1)
        total = total + (per_sample * both).sum() / both.sum().clamp_min(1.0)
    return total


def domain_loss(domain_logits: Tensor, valid: Tensor) -> Tensor:
    """L_dco: the cross-entropy of the domain classifier's ``[B, M, M]`` logits against the
    modality index, averaged over the valid (sample, modality) rows (0 if there are none)."""
    count = domain_logits.shape[1]
    labels = torch.arange(count, device=domain_logits.device).expand(domain_logits.shape[0], count)
    per_row = F.cross_entropy(
        domain_logits.reshape(-1, count), labels.reshape(-1), reduction="none"
    )
    weight = valid.reshape(-1).to(per_row.dtype)
    return (per_row * weight).sum() / weight.sum().clamp_min(1.0)


def drop_subsets(batch: Batch, seed: int, epoch: int, modalities: tuple[str, ...]) -> Batch:
    """Keep a random subset of each sample's present modalities: ``k ~ U{1..n}`` of its ``n``,
    uniformly chosen (the authors' ``--mode=random``); dropped inputs are zeroed."""
    present = torch.stack([batch.present[m] for m in modalities], dim=1).bool()
    index = batch.index.to(present.device).long()
    draws = stream(seed, "shaspec-drop", "train", int(epoch)).uniform(
        index, (len(modalities) + 1,), torch.float64
    )
    n = present.sum(dim=1)
    k = (draws[:, 0] * n.to(torch.float64)).floor().long() + 1
    # rank the present modalities by a uniform key (absent ones last) and keep the first k
    keys = torch.where(present, draws[:, 1:], torch.full_like(draws[:, 1:], 2.0))
    rank = keys.argsort(dim=1).argsort(dim=1)
    keep = present & (rank < k.unsqueeze(1))
    inputs = dict(batch.inputs)
    new_present = dict(batch.present)
    for i, m in enumerate(modalities):
        column = keep[:, i].to(batch.present[m].device)
        shape = (-1,) + (1,) * (inputs[m].dim() - 1)
        inputs[m] = inputs[m] * column.view(shape).to(inputs[m].dtype)
        new_present[m] = column
    return batch.replace(inputs=inputs, present=new_present)


@METHODS.register(
    "shaspec",
    "shared and specific features, residual fusion, missing modalities filled from the shared "
    "space; alignment and domain-classification losses (Wang et al., CVPR 2023)",
)
class ShaSpec(Method):
    """ShaSpec; see the module docstring for the equations and decisions.

    Options: ``fill`` ("mean" | "first"), ``aux_losses`` ("present" | "all"), ``alpha`` (0.1,
    weight of L_dao), ``beta`` (0.02, weight of L_dco), ``pairs`` ("cycle" | "all"),
    ``shared_dim`` (default ``hidden_dim``), ``missing_training`` ("subset" | "independent" |
    "none"), ``p`` (0.3, for ``independent``), ``warmup`` (0.3, the authors' run.sh: fraction of the
    epochs on full modalities; above 0 the recipe keeps the last epoch), ``seed`` (default: the run's ``--seed``).
    """

    #: What each numeric option accepts (checked before anything is built or written).
    option_limits: ClassVar[dict[str, Accepts]] = {
        "alpha": number(0.0, 1e3),
        "beta": number(0.0, 1e3),
        "shared_dim": integer(1, 65536),
        "p": number(0.0, 1.0, open_maximum=True),
        "warmup": number(0.0, 1.0, open_maximum=True),
        "seed": integer(0, 2**32 - 1),
    }

    paper = (
        "Wang et al., Multi-modal Learning with Missing Modality via Shared-Specific Feature "
        "Modelling, CVPR 2023 (arXiv 2307.14126; code github.com/billhhh/ShaSpec)"
    )

    def __init__(
        self,
        spec: MethodSpec,
        fill: str = "mean",
        aux_losses: str = "present",
        alpha: float = 0.1,
        beta: float = 0.02,
        pairs: str = "cycle",
        shared_dim: int | None = None,
        missing_training: str = "subset",
        p: float = 0.3,
        warmup: float = 0.3,
        seed: int | None = None,
    ) -> None:
        super().__init__(spec)
        if len(self.modalities) < 2:
            raise ConfigError(f"shaspec needs at least 2 modalities, got {len(self.modalities)}")
        if fill not in FILLS:
            raise ConfigError(f"shaspec: unknown fill {fill!r}; use shaspec.fill=mean or first")
        if aux_losses not in AUX_LOSSES:
            raise ConfigError(
                f"shaspec: unknown aux_losses {aux_losses!r}; use shaspec.aux_losses=present or all"
            )
        if pairs not in PAIRS:
            raise ConfigError(f"shaspec: unknown pairs {pairs!r}; use shaspec.pairs=cycle or all")
        if missing_training not in MISSING_TRAINING:
            raise ConfigError(
                f"shaspec: unknown missing_training {missing_training!r}; use "
                f"shaspec.missing_training={'|'.join(MISSING_TRAINING)}"
            )
        if float(alpha) < 0 or float(beta) < 0:
            raise ConfigError(f"shaspec: alpha={alpha} and beta={beta} must be >= 0")
        if not 0.0 <= float(p) < 1.0:
            raise ConfigError(f"shaspec: p must be in [0, 1), got {p}")
        if not 0.0 <= float(warmup) < 1.0:
            raise ConfigError(
                f"shaspec: warmup is a fraction of the epochs in [0, 1), got {warmup}"
            )
        if shared_dim is not None and int(shared_dim) < 1:
            raise ConfigError(f"shaspec: shared_dim must be >= 1, got {shared_dim}")
        self.fill = fill
        self.aux_losses = aux_losses
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.pairs = alignment_pairs(len(self.modalities), pairs)
        self.missing_training = missing_training
        self.p = float(p)
        self.warmup = float(warmup)
        self.seed = int(spec.seed if seed is None else seed)
        self.epoch = 0
        self.max_epochs = 0
        d = int(shared_dim or spec.hidden_dim)
        self.shared_dim = d
        count = len(self.modalities)
        dims = {m: int(spec.feature_dims[m]) for m in self.modalities}
        self.stems = nn.ModuleDict({m: nn.Linear(dims[m], d) for m in self.modalities})
        self.shared_trunk = nn.Sequential(nn.ReLU(), nn.Linear(d, d), nn.ReLU())
        self.specific = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(dims[m], d), nn.ReLU()) for m in self.modalities}
        )
        self.projection = nn.Linear(2 * d, d, bias=False)
        self.domain_classifier = nn.Linear(d, count)
        self.classifier = nn.Sequential(
            nn.Linear(count * d, spec.hidden_dim),
            nn.ReLU(),
            nn.Linear(spec.hidden_dim, spec.num_classes),
        )

    # ----------------------------------------------------------------- training hooks
    def on_epoch_start(self, epoch: int, max_epochs: int) -> None:
        self.epoch = int(epoch)
        self.max_epochs = int(max_epochs)

    @classmethod
    def training_defaults(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """The authors' protocol keeps the final model after the warm-up: ``selection: last``
        whenever ``warmup`` is above 0 (the default)."""
        warmup = options.get("warmup", 0.3)
        if isinstance(warmup, int | float) and not isinstance(warmup, bool) and warmup > 0:
            return {"selection": "last"}
        return {}

    def in_warmup(self, epoch: int | None = None, max_epochs: int | None = None) -> bool:
        """Whether ``epoch`` trains on full modalities (the first ``warmup`` fraction)."""
        epoch = self.epoch if epoch is None else int(epoch)
        total = self.max_epochs if max_epochs is None else int(max_epochs)
        return epoch < round(self.warmup * total)

    def selectable_epoch(self, epoch: int, max_epochs: int) -> bool:
        """Warm-up epochs (no missing modality seen yet) are not selectable; the last always is."""
        if max_epochs <= 0:
            return True
        return not self.in_warmup(epoch, max_epochs) or epoch >= max_epochs - 1

    def prepare_batch(self, batch: Batch, training: bool) -> Batch:
        """Training after the warm-up: drop modalities (``missing_training``)."""
        if not training or self.missing_training == "none" or self.in_warmup():
            return batch
        if self.missing_training == "subset":
            return drop_subsets(batch, self.seed, self.epoch, self.modalities)
        if self.p <= 0:
            return batch
        return drop_modalities(batch, self.p, self.seed, self.epoch, self.modalities)

    # ----------------------------------------------------------------- model
    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        shared = torch.stack(
            [self.shared_trunk(self.stems[m](features[m])) for m in self.modalities], dim=1
        )
        specific = torch.stack([self.specific[m](features[m]) for m in self.modalities], dim=1)
        mask = torch.stack([present[m] for m in self.modalities], dim=1).to(shared.device).bool()
        fused = shared + self.projection(torch.cat([shared, specific], dim=-1))
        filler = fill_missing(shared, mask, self.fill).unsqueeze(1).expand_as(fused)
        h = torch.where(mask.unsqueeze(-1), fused, filler)
        logits = self.classifier(h.reshape(h.shape[0], -1))
        return FusionOutput(
            logits=logits,
            weights=uniform_weights(present, self.modalities).to(logits.device),
            modalities=self.modalities,
            extras={
                "shared": shared,
                "specific": specific,
                "domain_logits": self.domain_classifier(specific),
                "present": mask,
            },
        )

    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        """CE, ``alpha · L_dao`` and ``beta · L_dco`` (on ``aux_losses`` modalities)."""
        mask = output.extras["present"]
        valid = mask if self.aux_losses == "present" else torch.ones_like(mask)
        return {
            "ce": F.cross_entropy(output.logits, batch.target),
            "alignment": self.alpha * alignment_loss(output.extras["shared"], valid, self.pairs),
            "domain": self.beta * domain_loss(output.extras["domain_logits"], valid),
        }
