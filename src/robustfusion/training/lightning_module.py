"""LightningModule wrapping a :class:`~robustfusion.model.MultimodalModel` and its method's hooks."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor

from robustfusion.errors import ConfigError
from robustfusion.model import MultimodalModel
from robustfusion.training.config import TrainConfig
from robustfusion.training.seeding import epoch_seed, seed_all, seed_step, step_seed
from robustfusion.types import Batch

#: Default interval, in optimizer steps, of the per-step rows of ``logs/metrics.csv``.
DEFAULT_LOG_EVERY_N_STEPS = 50


def method_log_interval(method: Any) -> int | None:
    """The smallest ``log_every_n_steps`` a method or any method it wraps (``inner``) asks for:
    e.g. MWAM asks for every step, which its FRM analysis (``robustfusion frm``) reads."""
    wanted: list[int] = []
    while method is not None:
        every = getattr(method, "log_every_n_steps", None)
        if every is not None:
            wanted.append(int(every))
        method = getattr(method, "inner", None)
    return min(wanted) if wanted else None


class FusionModule(L.LightningModule):
    """Training: ``prepare_batch -> model -> sum(losses)``; the method's hooks at their moments.

    * ``on_train_epoch_start``: reseed every generator from ``(seed, epoch)``, then
      ``method.on_epoch_start(epoch, max_epochs)``; ``on_train_batch_start``: reseed the
      generators a step can use from ``(seed, epoch, batch)`` (:func:`seed_step`, cheap). Random
      draws therefore do not depend on what ran before (data loading, validation, a restart), and
      a resumed run replays an uninterrupted one exactly.
    * logging [ours]: per-step rows (``train_loss_step``, ``loss/<term>``, ``method/<value>``) every
      ``log_every_n_steps`` optimizer steps (the argument, else ``config.log_every_n_steps`` when
      the config has it, else the method's own ``log_every_n_steps`` class attribute, else 50)
      and at the last step of each epoch; epoch means
      (``train_loss_epoch``, ``loss/<term>_epoch``, weighted by batch size, summed over
      processes) at the end of each epoch; ``val_<metric>`` after each validation (the task's
      selection metric: ``val_acc``, ``val_miou``). Nothing is read
      back from the device on other steps, ``method.logged_values()`` is only called on logging
      steps, and rows go to the loggers directly (the progress bar, when shown, gets
      ``train_loss`` and ``val_acc`` through ``self.log``).
    * ``on_after_backward``: ``method.after_backward(model.encoders)`` (gradient modulation).
    * learning rate: ``base lr * method.lr_scale(epoch, max_epochs)`` through a ``LambdaLR``.
    * validation: the task's selection metric of the fused logits (accuracy; mIoU for
      segmentation) from statistics summed over batches and processes, logged as ``val_<metric>``.
    """

    def __init__(
        self, model: MultimodalModel, config: TrainConfig, log_every_n_steps: int | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.config = config
        every = log_every_n_steps
        if every is None:
            every = getattr(config, "log_every_n_steps", None)
        if every is None:
            every = method_log_interval(model.method) or DEFAULT_LOG_EVERY_N_STEPS
        if int(every) < 1:
            raise ConfigError(f"log_every_n_steps must be at least 1, got {every}")
        self.log_every_n_steps = int(every)
        #: The task (:mod:`robustfusion.tasks`) whose validation metric selects checkpoints.
        self.task = model.method.task
        #: The last validation's selection metric (accuracy; mIoU for segmentation).
        self.val_accuracy: float = float("nan")
        self._val_counts: Tensor | None = None
        self._train_sums: dict[str, Tensor] = {}
        self._train_samples = 0
        # The optimisation step is written out in training_step (Lightning's manual
        # optimisation): its automatic loop wraps every step in closures and hooks that cost a
        # tenth of a small model's step (mfeat) and do nothing this trainer needs.
        self.automatic_optimization = False

    @property
    def method(self) -> Any:
        return self.model.method

    # ------------------------------------------------------------------ training
    def on_train_epoch_start(self) -> None:
        seed_all(epoch_seed(self.config.seed, self.current_epoch))
        self.method.on_epoch_start(self.current_epoch, self.config.epochs)
        self._train_sums = {}
        self._train_samples = 0

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        seed_step(step_seed(self.config.seed, self.current_epoch, batch_idx), self.device)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        batch = self.method.prepare_batch(batch, True)
        output = self.model(batch)
        terms = self.method.losses(output, batch)
        loss = torch.stack([value for value in terms.values()]).sum()
        size = batch.batch_size
        self._accumulate("train_loss", loss, size)
        for name, value in terms.items():
            self._accumulate(f"loss/{name}", value, size)
        self._train_samples += size
        if self._logs_this_step(batch_idx):
            names = ["train_loss_step", *(f"loss/{name}" for name in terms)]
            values = torch.stack([loss.detach(), *(v.detach() for v in terms.values())])
            row = dict(zip(names, values.float().tolist(), strict=True))  # one device sync
            row.update({f"method/{k}": float(v) for k, v in self.method.logged_values().items()})
            self._write_row(row)
            if self._shows_progress():
                self.log("train_loss", loss.detach(), prog_bar=True, logger=False, batch_size=size)
        self._optimise(loss)
        return loss

    def _optimise(self, loss: Tensor) -> None:
        """Backward (the method's gradient modulation runs in ``on_after_backward``), gradient
        clipping by norm when ``gradient_clip_val`` is set, then the optimiser step."""
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.config.gradient_clip_val:
            self.clip_gradients(
                optimizer,
                gradient_clip_val=self.config.gradient_clip_val,
                gradient_clip_algorithm="norm",
            )
        optimizer.step()

    def _accumulate(self, name: str, value: Tensor, size: int) -> None:
        """Add ``value * size`` to the epoch sum ``name``, on the device (no synchronisation)."""
        value = value.detach().float()
        total = self._train_sums.get(name)
        self._train_sums[name] = value * size if total is None else total.add_(value, alpha=size)

    def _logs_this_step(self, batch_idx: int) -> bool:
        """Every ``log_every_n_steps`` optimizer steps, and at the last batch of an epoch."""
        if self.global_step % self.log_every_n_steps == 0:
            return True
        last = getattr(self.trainer, "num_training_batches", float("inf"))
        return batch_idx + 1 >= last

    def on_train_epoch_end(self) -> None:
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()  # the method's learning-rate schedule, once per epoch
        if not self._train_sums:
            return
        names = list(self._train_sums)
        count = torch.tensor(float(self._train_samples), device=self._train_sums[names[0]].device)
        totals = torch.stack([self._train_sums[name] for name in names] + [count])
        totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
        means = (totals[:-1] / totals[-1].clamp_min(1.0)).tolist()
        self._write_row({f"{name}_epoch": m for name, m in zip(names, means, strict=True)})

    def _write_row(self, row: dict[str, float]) -> None:
        """One row of ``logs/metrics.csv`` (with ``epoch`` and ``step``), flushed at once.

        Written to the loggers directly: ``self.log`` costs milliseconds per value (Lightning's
        result collection), and these values are already reduced. Loggers act on rank 0 only.
        """
        row = {**row, "epoch": self.current_epoch}
        for logger in self.loggers:
            logger.log_metrics(row, step=self.global_step)
            logger.save()

    def _shows_progress(self) -> bool:
        return getattr(self._trainer, "progress_bar_callback", None) is not None

    def on_after_backward(self) -> None:
        self.method.after_backward(self.model.encoders)

    def configure_optimizers(self) -> dict[str, Any]:
        from robustfusion.training.optim import build_optimizer

        config = self.config
        optimizer = build_optimizer(self.model.parameters(), config)
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
        self._val_counts = None

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        batch = self.method.prepare_batch(batch, False)
        logits = self.model(batch).logits
        counts = self.task.selection_counts(logits, batch.target, self.method.spec.num_classes)
        self._val_counts = counts if self._val_counts is None else self._val_counts + counts

    def on_validation_epoch_end(self) -> None:
        counts = self._val_counts
        if counts is None:
            counts = self.task.selection_counts(
                torch.zeros(0, 1, device=self.device),
                torch.zeros(0, dtype=torch.long, device=self.device),
                1,
            )
        counts = self.trainer.strategy.reduce(counts.double(), reduce_op="sum")
        self.val_accuracy = self.task.selection_score(counts)
        name = f"val_{self.task.selection_metric}"
        self._write_row({name: self.val_accuracy})
        if self._shows_progress():
            self.log(name, self.val_accuracy, prog_bar=True, logger=False, sync_dist=False)
