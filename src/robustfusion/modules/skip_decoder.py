"""Skip scores: fusion at several scales for segmentation (FCN's skip architecture).

Long et al. (2015), FCN-8s: class scores predicted by a 1x1 convolution from shallower, finer
encoder maps are upsampled and added to the scores of the deep map, which gives the coarse
prediction its boundaries back. Here each modality has its own skip scores at each of its
shallower strides, and the modalities' scores are fused with the method's per-sample weights
``[B, M]`` (detached: the decoder follows the weights, it does not train them), so a test-time
weight swap (``evaluate --weights``) and a missing modality (weight 0) act at every scale:

    logits = method_logits + up( sum_m w_m * sum_s up_s( score_{m,s}(skip_{m,s}) ) )

Why in score space, rather than an ESANet or FPN feature decoder: every method ends in class
scores, so the skips are defined for every method without entering it (its fusion, head and
losses stay those of one scale), and a 1x1 convolution to the classes is cheap beside the
encoders. The score layers start at zero, as in FCN, so training starts from the one-scale model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def skip_levels(strides: Sequence[int]) -> tuple[int, ...]:
    """Indices of the pyramid maps used as skips: the last map of each stride finer than the
    deepest map's (a dilated stage keeps its stride; its last map is the richest)."""
    deep = strides[-1]
    chosen: dict[int, int] = {}
    for index, stride in enumerate(strides[:-1]):
        if stride < deep:
            chosen[stride] = index
    return tuple(sorted(chosen.values()))


class SkipScores(nn.Module):
    """Weighted skip scores of every modality, upsampled to the output size.

    Args:
        pyramid_channels: modality -> channels of each map of its encoder's pyramid.
        pyramid_strides: modality -> stride of each of those maps.
        num_classes: score channels.
        modalities: the order of the weights' columns.
    """

    def __init__(
        self,
        pyramid_channels: Mapping[str, Sequence[int]],
        pyramid_strides: Mapping[str, Sequence[int]],
        num_classes: int,
        modalities: Sequence[str],
    ) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.levels = {m: skip_levels(tuple(pyramid_strides[m])) for m in self.modalities}
        if not any(self.levels.values()):
            raise ValueError(
                "no encoder map is finer than the fused one: skips need an encoder whose deep "
                "map has a larger stride than its first stage"
            )
        self.scores = nn.ModuleDict(
            {
                m: nn.ModuleList(
                    nn.Conv2d(int(pyramid_channels[m][i]), num_classes, 1) for i in self.levels[m]
                )
                for m in self.modalities
            }
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.zeros_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(
        self, skips: Mapping[str, Sequence[Tensor]], weights: Tensor, size: Sequence[int]
    ) -> Tensor:
        """``skips[m]``: modality ``m``'s pyramid without its deepest map; ``weights`` ``[B, M]``
        in :attr:`modalities` order; returns ``[B, K, *size]`` to add to the method's logits."""
        used = [m for m in self.modalities if self.levels[m]]
        finest = max(
            (tuple(skips[m][i].shape[-2:]) for m in used for i in self.levels[m]),
            key=lambda hw: hw[0] * hw[1],
        )
        total: Tensor | None = None
        for m in used:
            column = self.modalities.index(m)
            scores: Tensor | None = None
            for conv, index in zip(self.scores[m], self.levels[m], strict=True):
                score = conv(skips[m][index])
                if tuple(score.shape[-2:]) != finest:
                    score = F.interpolate(score, size=finest, mode="bilinear", align_corners=False)
                scores = score if scores is None else scores + score
            assert scores is not None
            weighted = scores * weights[:, column].to(scores.dtype).view(-1, 1, 1, 1)
            total = weighted if total is None else total + weighted
        assert total is not None
        if tuple(total.shape[-2:]) != tuple(size):
            total = F.interpolate(total, size=tuple(size), mode="bilinear", align_corners=False)
        return total.contiguous(memory_format=torch.contiguous_format)
