"""What every method returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class FusionOutput:
    """The output of a fusion method.

    Attributes:
        logits: fused class logits ``[B, C]``.
        weights: per-sample, per-modality contributions ``[B, M]`` in ``modalities`` order,
            normalised to sum to 1 over modalities (0 for an absent modality), for every method so
            that reports can compare them. A method whose native weights have another scale
            (UDML's sum to M) keeps those in ``extras``.
        modalities: the modality names, in the order of the columns of ``weights``.
        unimodal_logits: modality name -> ``[B, C]`` logits of a unimodal head, where the method
            has them.
        extras: named tensors a method's ``losses`` needs (means, variances, evidence, ...).
    """

    logits: Tensor
    weights: Tensor
    modalities: tuple[str, ...]
    unimodal_logits: dict[str, Tensor] = field(default_factory=dict)
    extras: dict[str, Tensor] = field(default_factory=dict)
