"""``robustfusion methods``: the registered fusion methods, one per line."""

from __future__ import annotations

import argparse

from robustfusion.registry import METHODS

NAME = "methods"
HELP = "list the fusion methods, one per line with a short description"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(args: argparse.Namespace) -> int:
    print("\n".join(METHODS.listing()))
    return 0
