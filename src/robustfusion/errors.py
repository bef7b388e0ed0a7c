"""User-facing errors.

Every mistake a user can make (a wrong shape, an unknown name, a missing file, a corrupted
checkpoint) raises a :class:`RobustFusionError` whose message is one line that names the problem
and the fix. The CLI prints that line and exits with status 2, without a traceback.
"""

from __future__ import annotations


class RobustFusionError(Exception):
    """Base class of every error caused by user input; the CLI exits 2 on it."""


class UnknownNameError(RobustFusionError, KeyError):
    """An unknown method, dataset, encoder, fusion or corruption name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(RobustFusionError, ValueError):
    """Malformed, missing or inconsistent data (shapes, NaN/Inf, missing arrays or files)."""


class ConfigError(RobustFusionError, ValueError):
    """An invalid configuration value or combination."""


class CheckpointError(RobustFusionError):
    """A missing, truncated or incompatible checkpoint."""


class RunFolderError(RobustFusionError):
    """A run folder that cannot be used as asked: it holds a run (give ``--resume`` or
    ``--overwrite``), holds no run to resume, holds something else, or is in use."""


class FolderBusyError(RunFolderError):
    """Another process holds the folder's lock."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training. ``message`` says how far the run got and how to continue it; the
    CLI prints it and exits 130. A subclass of :class:`KeyboardInterrupt`, so that library
    callers stop as they would on any interrupt."""

    def __init__(self, message: str, epochs_done: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.epochs_done = epochs_done
