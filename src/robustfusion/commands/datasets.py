"""``robustfusion datasets``: the registered datasets, one per line."""

from __future__ import annotations

import argparse

from robustfusion.registry import DATASETS

NAME = "datasets"
HELP = "list the datasets, one per line with a short description"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(args: argparse.Namespace) -> int:
    print("\n".join(DATASETS.listing()))
    return 0
