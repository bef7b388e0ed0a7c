"""Callbacks: model selection on validation accuracy, and the resumable last checkpoint."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from robustfusion.errors import ConfigError

#: Test-only: exit the process right after the checkpoint of this epoch (simulates a kill).
EXIT_AFTER_EPOCH_ENV = "ROBUSTFUSION_TEST_EXIT_AFTER_EPOCH"

#: Default least wall-clock time between two writes of ``last.ckpt`` (seconds).
CHECKPOINT_EVERY_S = 30.0


class BestModel(L.Callback):
    """Keeps the weights of the epoch with the best validation accuracy (ties: the earlier epoch),
    or with ``selection="last"`` those of the last epoch offered.

    Its state (best accuracy, epoch and weights) is saved in ``last.ckpt``, so a resumed run
    selects exactly the model an uninterrupted run would.
    """

    def __init__(self, selection: str = "best_val") -> None:
        if selection not in ("best_val", "last"):
            raise ConfigError(f"unknown selection {selection!r}: choose best_val or last")
        self.selection = selection
        self.best_accuracy = float("-inf")
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] = {}

    def update(self, epoch: int, accuracy: float, module: L.LightningModule) -> None:
        if self.selection == "last" or accuracy > self.best_accuracy:
            self.best_accuracy = accuracy
            self.best_epoch = epoch
            self.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in module.model.state_dict().items()
            }

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_accuracy": self.best_accuracy,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_accuracy = float(state_dict["best_accuracy"])
        self.best_epoch = int(state_dict["best_epoch"])
        self.best_state = dict(state_dict["best_state"])


class EpochEnd(L.Callback):
    """After each epoch's validation: update the best model, then write ``last.ckpt`` atomically
    when it is due.

    Due [ours]: after the first epoch, after the last one, when training stops early, and
    otherwise once at least ``every_s`` seconds (default 30) have passed since the previous write.
    A killed run therefore loses at most about ``every_s`` seconds of training, and runs whose
    epochs last a fraction of a second (mfeat: ~0.1 s, the checkpoint ~10 ms) do not spend a tenth
    of their time writing checkpoints. ``every_s=0`` writes after every epoch. Resuming from an
    older checkpoint replays the same epochs (seeded per epoch), so results do not depend on
    which epochs were written. Rank 0 decides; the decision is broadcast to every process.
    """

    def __init__(self, best: BestModel, checkpoint: Path, every_s: float = CHECKPOINT_EVERY_S):
        if not every_s >= 0:
            raise ConfigError(
                f"the checkpoint interval must be >= 0 seconds, got {every_s}: 0 saves every epoch"
            )
        self.best = best
        self.checkpoint = Path(checkpoint)
        self.every_s = float(every_s)
        self.saved_epochs: list[int] = []
        self._last_save: float | None = None

    def _due(self, trainer: L.Trainer, epoch: int, exit_now: bool) -> bool:
        max_epochs = trainer.max_epochs if trainer.max_epochs is not None else -1
        due = (
            exit_now
            or self._last_save is None
            or bool(trainer.should_stop)
            or (max_epochs >= 0 and epoch + 1 >= max_epochs)
            or time.perf_counter() - self._last_save >= self.every_s
        )
        return bool(trainer.strategy.broadcast(due, src=0))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if pl_module.model.method.selectable_epoch(epoch, int(trainer.max_epochs or 0)):
            self.best.update(epoch, float(pl_module.val_accuracy), pl_module)
        exit_now = os.environ.get(EXIT_AFTER_EPOCH_ENV) == str(epoch)
        if self._due(trainer, epoch, exit_now):
            tmp = self.checkpoint.with_name(f".{self.checkpoint.name}.tmp")
            trainer.save_checkpoint(tmp, weights_only=False)
            if trainer.is_global_zero:
                os.replace(tmp, self.checkpoint)
            trainer.strategy.barrier("last-checkpoint")
            self._last_save = time.perf_counter()
            self.saved_epochs.append(epoch)
        if exit_now:
            os._exit(17)
