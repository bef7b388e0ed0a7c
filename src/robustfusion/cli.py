"""The ``robustfusion`` command line; subcommands are the modules of :mod:`robustfusion.commands`.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Exit statuses: 0 success; 2 a user's mistake (a :class:`RobustFusionError` or a bad flag), printed
as one line ``error: ...`` on stderr without a traceback; 130 Ctrl-C (training prints how far it
got and how to resume); 141 stdout closed early (``robustfusion methods | head -1``), quietly.
Notes (``robustfusion`` logger, e.g. a dataset's guessed value range) print as ``note: ...``.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import pkgutil
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from robustfusion import __version__
from robustfusion.errors import RobustFusionError, TrainingInterrupted

#: Exit status when stdout is closed before the output is written (128 + SIGPIPE, as the shell).
EXIT_BROKEN_PIPE = 141


class UsageError(Exception):
    """A command-line usage error (unknown flag, missing argument)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and exiting, and that reads a
    value starting with a minus and a digit (``--severities -1,2``, ``--seed -1``) as a value, so
    that its flag's check says what it accepts (argparse would take ``-1,2`` for an unknown flag)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._negative_number_matcher = re.compile(r"^-\.?\d[\w.,+\-]*$")

    def error(self, message: str) -> None:  # type: ignore[override]
        message = re.sub(r"^argument (\S+): \1 ", r"\1 ", message)  # a check names its flag
        raise UsageError(f"{message} (see '{self.prog} --help')")


class _NoteHandler(logging.Handler):
    """Prints ``note: MESSAGE`` on the current ``sys.stderr`` (looked up at each record)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"note: {_one_line(record.getMessage())}", file=sys.stderr)


def _route_notes() -> None:
    logger = logging.getLogger("robustfusion")
    if not any(isinstance(h, _NoteHandler) for h in logger.handlers):
        logger.addHandler(_NoteHandler(logging.INFO))
    logger.setLevel(logging.INFO)
    logger.propagate = False


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


def _run(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        status = int(args._run(args) or 0)
    except SystemExit:  # --help, --version: flush here so that a closed pipe is caught below
        sys.stdout.flush()
        raise
    except (UsageError, RobustFusionError) as error:
        print(f"error: {_one_line(str(error))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise
    except OSError as error:  # a read-only or full file system, a folder we may not write
        print(f"error: {file_system_message(error)}", file=sys.stderr)
        return 2
    except TrainingInterrupted as interrupt:
        print(interrupt.message, file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    sys.stdout.flush()
    return status


#: The fix for each file-system error a command can meet while it writes.
_FILE_SYSTEM_FIXES = {
    errno.EROFS: "the file system is read-only: give an output path on a writable one",
    errno.ENOSPC: "the disk is full: free some space or give an output path on another disk",
    errno.EDQUOT: "the disk quota is exhausted: free some space or write elsewhere",
    errno.EACCES: "permission denied: give an output path you may write, or change its permissions",
    errno.EPERM: "operation not permitted: give an output path you may write",
    errno.ENOTDIR: "a part of the path is a file, not a folder: give another path",
    errno.EISDIR: "the path is a folder where a file was expected: give a file path",
    errno.ENAMETOOLONG: "the path is too long: give a shorter one",
}


def file_system_message(error: OSError) -> str:
    """One line for an ``OSError``: what could not be done, where, and how to fix it."""
    target = error.filename2 if error.filename2 is not None else error.filename
    where = "a file" if target is None else str(target)
    if target is not None:
        path = Path(os.fsdecode(target))
        if path.name.startswith(".") and path.suffix in (".tmp", ".lock"):  # our temporaries
            where = f"in {path.parent}"
    reason = error.strerror or str(error)
    fix = _FILE_SYSTEM_FIXES.get(error.errno or 0, "check the path and the disk, then retry")
    if error.errno == errno.EEXIST and target is not None and Path(os.fsdecode(target)).is_file():
        fix = "it is a file, not a folder: give a path whose parents are folders"
    return _one_line(
        f"cannot write {where} ({reason}): {fix}; nothing that was already there was changed"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    from robustfusion.allocator import keep_freed_memory
    from robustfusion.threads import configure_threads

    _route_notes()
    configure_threads()  # OMP_NUM_THREADS, else the cores this process may use (cgroup quota too)
    keep_freed_memory()  # freed tensor memory stays in the process: no page faults per step
    try:
        return _run(argv)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # a replaced sys.stdout (tests): nothing to do
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
