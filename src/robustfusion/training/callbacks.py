"""Callbacks: model selection on validation accuracy, and the resumable last checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch

#: Test-only: exit the process right after the checkpoint of this epoch (simulates a kill).
EXIT_AFTER_EPOCH_ENV = "ROBUSTFUSION_TEST_EXIT_AFTER_EPOCH"


class BestModel(L.Callback):
    """Keeps the weights of the epoch with the best validation accuracy (ties: the earlier epoch).

    Its state (best accuracy, epoch and weights) is saved in ``last.ckpt``, so a resumed run
    selects exactly the model an uninterrupted run would.
    """

    def __init__(self) -> None:
        self.best_accuracy = float("-inf")
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] = {}

    def update(self, epoch: int, accuracy: float, module: L.LightningModule) -> None:
        if accuracy > self.best_accuracy:
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
    """After each epoch's validation: update the best model, then write ``last.ckpt`` atomically."""

    def __init__(self, best: BestModel, checkpoint: Path) -> None:
        self.best = best
        self.checkpoint = Path(checkpoint)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if pl_module.model.method.selectable_epoch(epoch, int(trainer.max_epochs or 0)):
            self.best.update(epoch, float(pl_module.val_accuracy), pl_module)
        tmp = self.checkpoint.with_name(f".{self.checkpoint.name}.tmp")
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            os.replace(tmp, self.checkpoint)
        trainer.strategy.barrier("last-checkpoint")
        if os.environ.get(EXIT_AFTER_EPOCH_ENV) == str(epoch):
            os._exit(17)
