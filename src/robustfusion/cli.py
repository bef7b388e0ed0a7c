"""The ``robustfusion`` command line; subcommands are the modules of :mod:`robustfusion.commands`.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
A user's mistake (a :class:`RobustFusionError` or a bad flag) prints one line ``error: ...`` on
stderr and exits 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from robustfusion import __version__
from robustfusion.errors import RobustFusionError


class UsageError(Exception):
    """A command-line usage error (unknown flag, missing argument)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def discover_commands() -> list[ModuleType]:
    """The command modules of :mod:`robustfusion.commands`, sorted by name."""
    package = importlib.import_module("robustfusion.commands")
    modules = [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    ]
    return sorted((m for m in modules if hasattr(m, "NAME")), key=lambda m: m.NAME)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="robustfusion",
        description="Multimodal models that stay robust to noisy, corrupted and missing modalities.",
    )
    parser.add_argument("--version", action="version", version=f"robustfusion {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in discover_commands():
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input)."""
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        return int(args._run(args) or 0)
    except (UsageError, RobustFusionError) as error:
        print(f"error: {_one_line(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
