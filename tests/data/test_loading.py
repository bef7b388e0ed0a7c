"""load_dataset: name or file, option checking, unknown names."""

from __future__ import annotations

import pytest

from robustfusion.data import load_dataset
from robustfusion.errors import ConfigError, UnknownNameError


def test_unknown_dataset_name_suggests_the_closest() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'mfeat'"):
        load_dataset("mfet")


def test_name_and_file_are_exclusive_and_one_is_needed() -> None:
    with pytest.raises(ConfigError, match="pass only one"):
        load_dataset("mfeat", data="x.npz")
    with pytest.raises(ConfigError, match="no dataset given"):
        load_dataset()


def test_unknown_option_names_the_accepted_ones() -> None:
    with pytest.raises(ConfigError, match="no option 'colour': its options are views"):
        load_dataset("mfeat", colour="red")
