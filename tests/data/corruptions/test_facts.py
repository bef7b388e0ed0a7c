"""Every corruption's facts live with its registration, and the grids, ``corrupt`` and the report
read them from there."""

from __future__ import annotations

import pytest

from robustfusion.data.base import ModalityInfo
from robustfusion.data.corruptions.base import CorruptionFacts, corruption_facts
from robustfusion.errors import ConfigError
from robustfusion.evaluation import grids
from robustfusion.evaluation.report import SEVERITY_AXES
from robustfusion.registry import CORRUPTIONS


def test_every_corruption_registers_its_facts() -> None:
    for entry in CORRUPTIONS:
        facts = entry.facts
        assert isinstance(facts, CorruptionFacts), entry.name
        assert facts.default_severities[0] == 0.0 and facts.unit
        assert not facts.bounded or max(facts.default_severities) <= 1.0
    ranks = [f.rank for f in corruption_facts().values()]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)


def test_grids_and_report_are_derived_from_the_facts() -> None:
    facts = corruption_facts()
    assert list(grids.DEFAULT_SEVERITIES) == ["gaussian", "salt_pepper", "blur", "missing"]
    assert {n: f.default_severities for n, f in facts.items()} == grids.DEFAULT_SEVERITIES
    assert grids.QUICK_SEVERITIES == {"gaussian": (0.0, 1.0, 4.0), "missing": (0.0, 0.5)}
    assert {n: f.unit for n, f in facts.items()} == SEVERITY_AXES
    vector = ModalityInfo("fou", (76,), "vector")
    image = ModalityInfo("rgb", (3, 8, 8), "image")
    assert grids.inapplicable("blur", vector) and grids.inapplicable("blur", image) is None
    assert all(
        grids.inapplicable(n, vector) is None for n in ("gaussian", "salt_pepper", "missing")
    )


@pytest.mark.parametrize("name", ["salt_pepper", "missing"])
def test_bounded_corruptions_refuse_severities_above_one(name: str) -> None:
    import torch

    from robustfusion.data import DatasetInfo
    from robustfusion.data.corruptions import corrupt
    from robustfusion.types import Batch

    info = DatasetInfo("t", (ModalityInfo("a", (3,)), ModalityInfo("b", (2,))), 2)
    batch = Batch(
        inputs={"a": torch.zeros(2, 3), "b": torch.zeros(2, 2)},
        target=torch.zeros(2, dtype=torch.long),
        present={"a": torch.ones(2, dtype=torch.bool), "b": torch.ones(2, dtype=torch.bool)},
        index=torch.arange(2),
    )
    with pytest.raises(ConfigError, match="is a fraction"):
        corrupt(batch, info, name, 1.5)
