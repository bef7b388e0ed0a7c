"""The benchmark's evaluation grids: corruptions, severities, targets and missing-modality subsets.

Severity units (``robustfusion.data.corruptions``): ``gaussian`` noise std in units of the
modality's (standardised) data; ``salt_pepper`` fraction of values; ``blur`` Gaussian sigma in
pixels / bins; ``missing`` probability that a modality is absent. Images whose corruption takes
0-255 intensity units get the equivalent severity (``level / intensity_scale``), so that one
gaussian level means the same noise-to-data ratio for every modality.

Blur needs ordered axes: it is applied to images, spectrograms, maps and time series, never to
unordered feature vectors (their neighbouring features are unrelated). Targets a corruption cannot
act on are skipped and listed (``Grid.skipped``), so a report can say where and why.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from torch.utils.data import Dataset

from robustfusion.data import DatasetInfo, ModalityInfo, MultimodalDataset, collate
from robustfusion.data.corruptions.base import corruption_facts
from robustfusion.errors import ConfigError
from robustfusion.evaluation.conflict import ConflictProtocol
from robustfusion.registry import CORRUPTIONS
from robustfusion.types import Batch

_FACTS = corruption_facts()
#: Default severities per corruption (0 is the clean reference of every curve), from each
#: corruption's registration (:class:`~robustfusion.data.corruptions.base.CorruptionFacts`).
DEFAULT_SEVERITIES: dict[str, tuple[float, ...]] = {
    name: facts.default_severities for name, facts in _FACTS.items()
}
#: The ``--quick`` grid: a first look in a fraction of the time.
QUICK_SEVERITIES: dict[str, tuple[float, ...]] = {
    name: facts.quick_severities for name, facts in _FACTS.items() if facts.quick_severities
}
#: At most this many missing-modality subsets (seeded choice when there are more).
MAX_MISSING_SUBSETS = 20


@dataclass(frozen=True)
class Grid:
    """What the benchmark evaluates for every trained (method, seed)."""

    severities: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: dict(DEFAULT_SEVERITIES)
    )
    modality_targets: tuple[str, ...] = ("gaussian",)
    max_missing_subsets: int = MAX_MISSING_SUBSETS
    eval_seed: int = 0
    #: Independent draws of every random corruption (seeds ``eval_seed``, ``eval_seed + 1``, ...)
    #: whose metrics are averaged: one draw of Gaussian noise on a few hundred test samples moves
    #: accuracy by a point or two at high severity.
    noise_draws: int = 1
    #: The RCML conflictive test set as one more cell of every run (``--conflict``): noise on some
    #: views of 10 % of the samples, a view from another class on 40 %; ``None``: not evaluated.
    conflict: ConflictProtocol | None = None

    def targets(self, modalities: Sequence[str] | DatasetInfo, corruption: str) -> tuple[str, ...]:
        """``all``, ``each`` and, for the corruptions in ``modality_targets``, every modality.

        Given a :class:`DatasetInfo`, modalities the corruption cannot act on are left out (and
        ``all``/``each`` too when none is left); see :meth:`skipped`.
        """
        names = _eligible(modalities, corruption)
        if not names:
            return ()
        named = tuple(names) if corruption in self.modality_targets else ()
        return ("all", "each", *named)

    def skipped(self, info: DatasetInfo) -> list[dict[str, str]]:
        """Every (corruption, modality) of the grid that is not evaluated, with the reason."""
        out = []
        for corruption in self.severities:
            for modality in info.modalities:
                reason = inapplicable(corruption, modality)
                if reason:
                    out.append(
                        {"corruption": corruption, "target": modality.name, "reason": reason}
                    )
        return out


def inapplicable(corruption: str, modality: ModalityInfo) -> str | None:
    """Why ``corruption`` is not applied to ``modality`` (``None``: it is)."""
    facts = CORRUPTIONS.facts(corruption)
    if facts.kinds is not None and modality.kind not in facts.kinds:
        article = "an" if modality.kind[0] in "aeiou" else "a"
        return f"{facts.why_not}; {modality.name!r} is {article} {modality.kind}" + (
            " of unordered features" if modality.kind == "vector" else ""
        )
    return None


def _eligible(modalities: Sequence[str] | DatasetInfo, corruption: str) -> list[str]:
    if isinstance(modalities, DatasetInfo):
        return [m.name for m in modalities.modalities if not inapplicable(corruption, m)]
    return list(modalities)


def default_grid(quick: bool = False) -> Grid:
    """The documented default grid (every modality as a target of ``gaussian`` only, for the
    weight-vs-severity figure), or the small ``--quick`` one (targets all and each only)."""
    if quick:
        return Grid(severities=dict(QUICK_SEVERITIES), modality_targets=(), max_missing_subsets=6)
    return Grid()


def missing_subsets(
    modalities: Sequence[str], limit: int = MAX_MISSING_SUBSETS, seed: int = 0
) -> list[tuple[str, ...]]:
    """Non-empty proper subsets of modalities to remove (all of them, or ``limit`` seeded ones).

    With more than ``limit`` subsets, the single-modality subsets are always kept (when they fit)
    and the rest drawn with ``random.Random(seed)``; the result is ordered by size, then name order.
    """
    names = tuple(modalities)
    every = [
        combo for size in range(1, len(names)) for combo in itertools.combinations(names, size)
    ]
    if len(every) <= limit:
        return every
    singles = [c for c in every if len(c) == 1][:limit]
    rest = [c for c in every if len(c) > 1]
    chosen = singles + random.Random(seed).sample(rest, limit - len(singles))
    order = {c: i for i, c in enumerate(every)}
    return sorted(chosen, key=order.__getitem__)


def subset_name(subset: Sequence[str]) -> str:
    return "+".join(subset)


def modality_severity(info: DatasetInfo, modality: str, corruption: str, level: float) -> float:
    """The severity to pass to ``corrupt`` for ``modality`` at grid ``level`` (see module doc)."""
    spec = info.modality(modality)
    intensity = CORRUPTIONS.facts(corruption).intensity_units
    if intensity and spec.raw_unit_scale:
        return level / spec.raw_unit_scale
    return level


def corrupt_level(
    batch: Batch, info: DatasetInfo, corruption: str, level: float, target: str, seed: int
) -> Batch:
    """``corrupt`` at grid ``level``; where modalities need different severities (gaussian on
    0-255 images beside standardised data), or some cannot take the corruption (blur on vectors),
    each applicable modality is corrupted on its own, the ``each`` selection being the corruption
    module's own p = 0.5 draw."""
    from robustfusion.data.corruptions import corrupt

    if target in ("all", "each"):
        names = tuple(m for m in batch.modalities if not inapplicable(corruption, info.modality(m)))
    else:
        names = (target,)
    if not names:
        return batch
    severities = {m: modality_severity(info, m, corruption, level) for m in names}
    if len(set(severities.values())) <= 1 and names == batch.modalities:
        return corrupt(batch, info, corruption, severities[names[0]], target=target, seed=seed)
    from robustfusion.data.corruptions.apply import each_selected

    index = batch.index.detach().long()
    for m in names:
        original = batch.present[m]
        if target == "each":
            chosen = each_selected(index, seed, m)
            masked = dict(batch.present)
            masked[m] = original & chosen.to(original.device)
            batch = batch.replace(present=masked)
        batch = corrupt(batch, info, corruption, severities[m], target=m, seed=seed)
        if target == "each":
            restored = dict(batch.present)
            restored[m] = original
            batch = batch.replace(present=restored)
    return batch


def remove_modalities(batch: Batch, info: DatasetInfo, subset: Sequence[str], seed: int) -> Batch:
    """Every sample loses the modalities of ``subset`` (``missing`` at severity 1 on each)."""
    from robustfusion.data.corruptions import corrupt

    for m in subset:
        batch = corrupt(batch, info, "missing", 1.0, target=m, seed=seed)
    return batch


class TransformedDataset(Dataset):
    """A dataset whose batches go through ``transform`` (a corruption) before the model."""

    def __init__(self, dataset: MultimodalDataset, transform: Callable[[Batch], Batch]) -> None:
        self.dataset = dataset
        self.transform = transform
        self.modalities = getattr(dataset, "modalities", ())

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Batch:
        return self.__getitems__([index])

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        getitems = getattr(self.dataset, "__getitems__", None)
        raw = getitems(list(indices)) if getitems else [self.dataset[i] for i in indices]
        return self.transform(collate(raw))

    def targets(self):  # noqa: ANN201 - same as the wrapped dataset
        return self.dataset.targets()


def check_grid(grid: Grid, corruptions: Sequence[str]) -> None:
    """Reject unknown corruption names with the list of known ones."""
    from robustfusion.registry import CORRUPTIONS

    for name in corruptions:
        if name not in CORRUPTIONS:
            raise ConfigError(
                f"unknown corruption {name!r} in the grid: choose from {', '.join(CORRUPTIONS.names())}"
            )
