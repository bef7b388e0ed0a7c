"""The data/ layout: prepare steps live in data/prepare/ but register whatever is imported first."""

from __future__ import annotations

import subprocess
import sys

from robustfusion.registry import DATASETS, PREPARERS


def test_every_dataset_and_prepare_step_is_registered() -> None:
    assert {"avdigits", "cremad", "kinetics_sounds", "nyudv2"} <= set(PREPARERS.names())
    assert {"mfeat", "fsdd_digits", "avdigits", "npz"} <= set(DATASETS.names())


def test_a_prepare_module_imported_first_still_registers_everything() -> None:
    # data.prepare imports data.datasets, which imports every prepare step: no circular-import
    # failure whichever module a user imports first (a fresh interpreter, so nothing is cached)
    code = (
        "import robustfusion.data.prepare.av_clips\n"
        "from robustfusion.registry import DATASETS, PREPARERS\n"
        "print(len(PREPARERS.names()), 'fsdd_digits' in DATASETS.names())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(len(PREPARERS.names())), "True"]
