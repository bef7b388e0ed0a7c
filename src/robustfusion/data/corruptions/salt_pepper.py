"""Salt-and-pepper noise: a fraction ``severity`` (0-1) of a sample's entries, chosen at random,
set to "salt" or "pepper" with equal probability.

Salt/pepper values: for ``vector`` modalities (standardised per feature by every loader) they
are +3 / -3, three standard deviations; for every other kind (images, spectrograms, maps, time
series) they are the sample's own maximum / minimum, the analogue of white/black pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor

from robustfusion.data.base import ModalityInfo
from robustfusion.data.corruptions.base import generator
from robustfusion.registry import CORRUPTIONS

#: Salt and pepper value for standardised vector features.
VECTOR_EXTREME = 3.0


@CORRUPTIONS.register("salt_pepper", "a fraction severity (0-1) of entries set to the min/max")
def salt_pepper(
    x: Tensor, modality: ModalityInfo, severity: float, seeds: Tensor
) -> tuple[Tensor, Tensor]:
    out = x.clone()
    flat = out.reshape(out.shape[0], -1)
    for row, seed in enumerate(seeds.tolist()):
        g = generator(seed)
        hit = torch.rand(flat.shape[1], generator=g) < severity
        salt = torch.rand(flat.shape[1], generator=g) < 0.5
        if modality.kind == "vector":
            high, low = VECTOR_EXTREME, -VECTOR_EXTREME
        else:
            high, low = float(flat[row].max()), float(flat[row].min())
        values = torch.where(salt, torch.tensor(high), torch.tensor(low)).to(flat.dtype)
        flat[row] = torch.where(hit.to(flat.device), values.to(flat.device), flat[row])
    return flat.reshape(x.shape), torch.ones(x.shape[0], dtype=torch.bool)
