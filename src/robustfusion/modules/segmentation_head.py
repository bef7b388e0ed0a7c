"""The output head of segmentation: fused feature maps -> per-pixel class logits.

DeepLab-style (Chen et al., 2017, the head of DeepLabv3 without ASPP): a 3x3 convolution with
BatchNorm and ReLU over the fused map, a 1x1 classifier, and bilinear upsampling of the logits to
the target size. It works on the one map the methods fuse (the encoders' last map, stride 8 for
``cnn``, ``output_stride`` for ``resnet18``); finer scales are added to its logits outside the
method by the skip scores of ``--decoder skips`` (:mod:`robustfusion.modules.skip_decoder`).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class SegmentationHead(nn.Module):
    """``[B, in_dim, h, w]`` -> ``[B, num_classes, H, W]`` with ``(H, W) = target_shape``."""

    def __init__(self, in_dim: int, num_classes: int, target_shape: tuple[int, int]) -> None:
        super().__init__()
        if len(target_shape) != 2:
            raise ValueError(f"a segmentation head needs an (H, W) target, got {target_shape}")
        self.target_shape = (int(target_shape[0]), int(target_shape[1]))
        self.refine = nn.Sequential(
            nn.Conv2d(in_dim, in_dim, 3, padding=1, bias=False),
            nn.BatchNorm2d(in_dim),
            nn.ReLU(),
        )
        self.classifier = nn.Conv2d(in_dim, num_classes, 1)

    def forward(self, fused: Tensor) -> Tensor:
        if fused.dim() != 4:
            raise ValueError(
                f"a segmentation head needs feature maps [B, C, h, w], got {tuple(fused.shape)}"
            )
        logits = self.classifier(self.refine(fused))
        if tuple(logits.shape[-2:]) == self.target_shape:
            return logits
        return F.interpolate(logits, size=self.target_shape, mode="bilinear", align_corners=False)
