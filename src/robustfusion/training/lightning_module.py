"""LightningModule wrapping a :class:`~robustfusion.model.MultimodalModel` and its method's hooks."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor

from robustfusion.model import MultimodalModel
from robustfusion.training.config import TrainConfig
from robustfusion.training.seeding import epoch_seed, seed_all, step_seed
from robustfusion.types import Batch


class FusionModule(L.LightningModule):
    """Training: ``prepare_batch -> model -> sum(losses)``; the method's hooks at their moments.

    * ``on_train_epoch_start``: reseed every generator from ``(seed, epoch)``, then
      ``method.on_epoch_start(epoch, max_epochs)``; ``on_train_batch_start``: reseed from
      ``(seed, epoch, batch)``. Random draws therefore do not depend on what ran before (data
      loading, validation, a restart), and a resumed run replays an uninterrupted one exactly.
    * ``on_after_backward``: ``method.after_backward(model.encoders)`` (gradient modulation).
    * learning rate: ``base lr * method.lr_scale(epoch, max_epochs)`` through a ``LambdaLR``.
    * validation: accuracy of the fused logits, summed over processes, logged as ``val_acc``.
    """

    def __init__(self, model: MultimodalModel, config: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.val_accuracy: float = float("nan")
        self._val_counts = torch.zeros(2, dtype=torch.float64)

    @property
    def method(self) -> Any:
        return self.model.method

    # ------------------------------------------------------------------ training
    def on_train_epoch_start(self) -> None:
        seed_all(epoch_seed(self.config.seed, self.current_epoch))
        self.method.on_epoch_start(self.current_epoch, self.config.epochs)

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        seed_all(step_seed(self.config.seed, self.current_epoch, batch_idx))

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        batch = self.method.prepare_batch(batch, True)
        output = self.model(batch)
        terms = self.method.losses(output, batch)
        loss = torch.stack([value for value in terms.values()]).sum()
        size = batch.batch_size
        self.log(
            "train_loss",
            loss,
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=size,
            sync_dist=True,
        )
        for name, value in terms.items():
            self.log(f"loss/{name}", value.detach(), on_step=True, batch_size=size)
        for name, value in self.method.logged_values().items():
            self.log(f"method/{name}", float(value), on_step=True, batch_size=size)
        return loss

    def on_after_backward(self) -> None:
        self.method.after_backward(self.model.encoders)

    def configure_optimizers(self) -> dict[str, Any]:
        config = self.config
        params = self.model.parameters()
        if config.optimizer == "adam":
            optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        elif config.optimizer == "adamw":
            optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        else:
            optimizer = torch.optim.SGD(
                params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
            )
        method, epochs = self.method, config.epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda epoch: float(method.lr_scale(epoch, epochs))
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    # ------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        self._val_counts = torch.zeros(2, dtype=torch.float64, device=self.device)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        batch = self.method.prepare_batch(batch, False)
        logits = self.model(batch).logits
        correct = (logits.argmax(dim=1) == batch.target).sum()
        self._val_counts += torch.stack(
            [
                correct.double(),
                torch.tensor(batch.batch_size, device=self.device, dtype=torch.float64),
            ]
        )

    def on_validation_epoch_end(self) -> None:
        counts = self.trainer.strategy.reduce(self._val_counts, reduce_op="sum")
        self.val_accuracy = float(counts[0] / counts[1].clamp_min(1.0))
        self.log("val_acc", self.val_accuracy, prog_bar=True, sync_dist=False)
