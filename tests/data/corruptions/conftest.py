"""A small two-modality batch (a standardised vector and a 0-255-scaled image) for corruptions."""

from __future__ import annotations

import pytest
import torch

from robustfusion.data.base import DatasetInfo, ModalityInfo
from robustfusion.types import Batch


@pytest.fixture
def info() -> DatasetInfo:
    return DatasetInfo(
        name="toy",
        modalities=(
            ModalityInfo("vec", (12,), "vector"),
            ModalityInfo("img", (1, 8, 8), "image", intensity_scale=1.0 / (255.0 * 0.5)),
        ),
        num_classes=3,
    )


@pytest.fixture
def batch() -> Batch:
    g = torch.Generator().manual_seed(0)
    n = 40
    return Batch(
        inputs={
            "vec": torch.randn(n, 12, generator=g),
            "img": torch.randn(n, 1, 8, 8, generator=g),
        },
        present={"vec": torch.ones(n, dtype=torch.bool), "img": torch.ones(n, dtype=torch.bool)},
        target=torch.randint(0, 3, (n,), generator=g),
        index=torch.arange(100, 100 + n),
    )
