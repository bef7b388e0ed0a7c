"""Salt-and-pepper noise: a fraction ``severity`` (0-1) of a sample's entries, chosen at random,
set to "salt" or "pepper" with equal probability.

Salt/pepper values: for ``vector`` modalities (standardised per feature by every loader) they
are +3 / -3, three standard deviations; for every other kind (images, spectrograms, maps, time
series) they are the sample's own maximum / minimum, the analogue of white/black pixels.
One 64-bit draw per entry (:mod:`robustfusion.rng`, keyed by the row's seed and the entry's
position) gives both the hit (its top 53 bits as a uniform) and the salt/pepper coin (bit 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfusion.data.base import ModalityInfo
from robustfusion.data.corruptions.base import CorruptionFacts
from robustfusion.registry import CORRUPTIONS
from robustfusion.rng import Stream

#: Salt and pepper value for standardised vector features.
VECTOR_EXTREME = 3.0

_DRAW = Stream("salt-pepper")


@CORRUPTIONS.register(
    "salt_pepper",
    "a fraction severity (0-1) of entries set to the min/max",
    facts=CorruptionFacts(
        unit="fraction of values set to min / max",
        default_severities=(0.0, 0.1, 0.2, 0.3, 0.5),
        bounded=True,
        rank=1,
    ),
)
def salt_pepper(
    x: Tensor, modality: ModalityInfo, severity: float, seeds: Tensor
) -> tuple[Tensor, Tensor]:
    flat = x.reshape(x.shape[0], -1)
    words = _DRAW.bits(seeds.to(x.device), flat.shape[1])
    uniform = ((words >> 11) & ((1 << 53) - 1)).to(torch.float64) * (1.0 / (1 << 53))
    hit = uniform < severity
    salt = (words & 1).bool()
    if modality.kind == "vector":
        high = torch.full_like(flat[:, :1], VECTOR_EXTREME)
        low = torch.full_like(flat[:, :1], -VECTOR_EXTREME)
    else:
        high = flat.amax(dim=1, keepdim=True)
        low = flat.amin(dim=1, keepdim=True)
    values = torch.where(salt, high, low)
    out = torch.where(hit, values, flat)
    return out.reshape(x.shape), torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
