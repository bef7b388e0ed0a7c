"""The trainer calls every hook of the method interface at its moment."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import Tensor, nn

from robustfusion.data import DatasetInfo, DataSplits, ModalityInfo, TensorMultimodalDataset
from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, MethodSpec, build_method, uniform_weights
from robustfusion.model import MultimodalModel
from robustfusion.training.config import TrainConfig
from robustfusion.training.datamodule import (
    EpochSeededSampler,
    MultimodalDataModule,
    PinnableBatch,
    collate_pinnable,
)
from robustfusion.training.lightning_module import FusionModule
from robustfusion.training.seeding import seed_all, seed_step
from robustfusion.types import Batch, FusionOutput


class Recording(Method):
    """A linear method that records how the trainer drives it."""

    def __init__(self, spec: MethodSpec) -> None:
        super().__init__(spec)
        self.head = nn.Linear(sum(spec.feature_dims.values()), spec.num_classes)
        self.calls: list[tuple] = []

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        fused = torch.cat([features[m] for m in self.modalities], dim=1)
        return FusionOutput(
            self.head(fused), uniform_weights(present, self.modalities), self.modalities
        )

    def prepare_batch(self, batch: Batch, training: bool) -> Batch:
        self.calls.append(("prepare", training))
        return batch

    def after_backward(self, encoders: nn.ModuleDict) -> None:
        grads = [p.grad is not None for p in encoders.parameters()]
        self.calls.append(("after_backward", tuple(encoders), all(grads)))

    def on_epoch_start(self, epoch: int, max_epochs: int) -> None:
        self.calls.append(("epoch", epoch, max_epochs))

    def lr_scale(self, epoch: int, max_epochs: int) -> float:
        return 0.5**epoch

    def logged_values(self) -> dict[str, float]:
        return {"probe": 1.25}


def _splits(n: int = 24) -> DataSplits:
    generator = torch.Generator().manual_seed(0)
    data = {
        "x": torch.randn(n, 3, generator=generator),
        "z": torch.randn(n, 2, generator=generator),
    }
    target = torch.arange(n) % 2
    dataset = TensorMultimodalDataset(data, target)
    info = DatasetInfo("toy", (ModalityInfo("x", (3,)), ModalityInfo("z", (2,))), num_classes=2)
    return DataSplits(dataset, dataset, dataset, info)


@pytest.mark.filterwarnings("ignore:.*LeafSpec.*")
def test_trainer_calls_every_hook(tmp_path: Path) -> None:
    splits = _splits()
    spec = MethodSpec(modalities=("x", "z"), feature_dims={"x": 4, "z": 4}, num_classes=2)
    method = Recording(spec)
    model = MultimodalModel({"x": nn.Linear(3, 4), "z": nn.Linear(2, 4)}, method)
    config = TrainConfig(epochs=3, batch_size=8, lr=0.1, out=str(tmp_path))
    module = FusionModule(model, config)
    lrs: list[float] = []

    class LrProbe(L.Callback):
        def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=L.pytorch.loggers.CSVLogger(tmp_path, "logs", ""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        callbacks=[LrProbe()],
    )
    trainer.fit(module, datamodule=MultimodalDataModule(splits, 8, 8, seed=0))

    epochs = [c for c in method.calls if c[0] == "epoch"]
    assert epochs == [("epoch", 0, 3), ("epoch", 1, 3), ("epoch", 2, 3)]
    backward = [c for c in method.calls if c[0] == "after_backward"]
    assert len(backward) == 3 * 3 and all(c[1] == ("x", "z") and c[2] for c in backward)
    prepared = [c[1] for c in method.calls if c[0] == "prepare"]
    assert prepared.count(True) == 9 and prepared.count(False) == 3 * 3  # val: 24/8 per epoch
    assert lrs == [0.1, 0.05, 0.025]  # base lr times method.lr_scale(epoch)
    with (tmp_path / "logs" / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert any(row.get("method/probe") == "1.25" for row in rows)
    assert sum(1 for row in rows if row.get("val_acc")) == 3
    assert 0.0 <= module.val_accuracy <= 1.0


def test_sampler_order_depends_only_on_seed_and_epoch() -> None:
    sampler = EpochSeededSampler(50, seed=3)
    sampler.set_epoch(4)
    first = list(sampler)
    torch.manual_seed(123)  # the global generator plays no part
    again = EpochSeededSampler(50, seed=3)
    again.set_epoch(4)
    assert list(again) == first and sorted(first) == list(range(50))
    again.set_epoch(5)
    assert list(again) != first


def test_loader_yields_batches(tmp_path: Path) -> None:
    data = MultimodalDataModule(_splits(10), batch_size=4, eval_batch_size=10, seed=0)
    batches = list(data.train_dataloader())
    assert [b.batch_size for b in batches] == [4, 4, 2]
    assert isinstance(batches[0], Batch)
    assert sorted(torch.cat([b.index for b in batches]).tolist()) == list(range(10))
    (val,) = list(data.val_dataloader())
    assert val.index.tolist() == list(range(10))  # evaluation keeps the split's order


class Counting(Recording):
    """Records the loss of every step and how often the trainer asks for logged values."""

    def __init__(self, spec: MethodSpec) -> None:
        super().__init__(spec)
        self.asked = 0

    def logged_values(self) -> dict[str, float]:
        self.asked += 1
        return {"probe": 1.25}


@pytest.mark.filterwarnings("ignore:.*LeafSpec.*")
def test_rows_every_n_steps_and_exact_epoch_means(tmp_path: Path) -> None:
    splits = _splits(24)  # 3 steps of 8 per epoch
    spec = MethodSpec(modalities=("x", "z"), feature_dims={"x": 4, "z": 4}, num_classes=2)
    method = Counting(spec)
    model = MultimodalModel({"x": nn.Linear(3, 4), "z": nn.Linear(2, 4)}, method)
    module = FusionModule(model, TrainConfig(epochs=3, batch_size=8, lr=0.1), log_every_n_steps=2)
    losses: list[tuple[int, float]] = []

    class LossProbe(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
            losses.append((trainer.current_epoch, float(outputs["loss"])))

    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=L.pytorch.loggers.CSVLogger(tmp_path, "logs", ""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        callbacks=[LossProbe()],
    )
    trainer.fit(module, datamodule=MultimodalDataModule(splits, 8, 8, seed=0))
    with (tmp_path / "logs" / "metrics.csv").open() as file:
        rows = list(csv.DictReader(file))
    step_rows = [r for r in rows if r["train_loss_step"]]
    # every 2nd optimizer step (0, 2, 4, 6, 8) and each epoch's last step (2, 5, 8)
    assert [int(r["step"]) for r in step_rows] == [0, 2, 4, 5, 6, 8]
    assert method.asked == 6 and all(r["method/probe"] == "1.25" for r in step_rows)
    epoch_rows = [r for r in rows if r["train_loss_epoch"]]
    assert [int(r["epoch"]) for r in epoch_rows] == [0, 1, 2]
    for row in epoch_rows:  # equal batches: the epoch mean is the mean of its step losses
        epoch_losses = [loss for e, loss in losses if e == int(row["epoch"])]
        assert float(row["train_loss_epoch"]) == pytest.approx(sum(epoch_losses) / 3, rel=1e-6)
        assert float(row["loss/ce_epoch"]) == pytest.approx(float(row["train_loss_epoch"]))
    assert [int(r["epoch"]) for r in rows if r["val_acc"]] == [0, 1, 2]
    with pytest.raises(ConfigError, match="log_every_n_steps"):
        FusionModule(model, TrainConfig(), log_every_n_steps=0)


def test_step_seeding_matches_full_seeding_on_the_cpu() -> None:
    import random

    import numpy as np

    seed_all(11)
    expected = (random.random(), float(np.random.rand()), torch.rand(3))
    torch.manual_seed(5)  # other states, then the cheap per-step reseed
    random.seed(5)
    np.random.seed(5)
    seed_step(11, torch.device("cpu"))
    got = (random.random(), float(np.random.rand()), torch.rand(3))
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])


def test_batches_are_pinnable_and_pinned_only_for_cuda(tmp_path: Path) -> None:
    data = MultimodalDataModule(_splits(10), batch_size=4, eval_batch_size=10, seed=0)
    assert not data._pins()  # no trainer, or a CPU one: nothing is pinned
    batch = collate_pinnable(_splits(10).train.__getitems__([3, 1]))
    assert isinstance(batch, Batch) and isinstance(batch, PinnableBatch)
    assert batch.index.tolist() == [3, 1]
    if torch.cuda.is_available():
        pinned = batch.pin_memory()
        assert all(t.is_pinned() for t in (*pinned.inputs.values(), pinned.target, pinned.index))


def test_a_method_can_ask_for_rows_every_step() -> None:
    from robustfusion.training.lightning_module import method_log_interval

    spec = MethodSpec(modalities=("x", "z"), feature_dims={"x": 4, "z": 4}, num_classes=2)
    assert method_log_interval(build_method("static", spec)) is None
    assert method_log_interval(build_method("mwam", spec)) == 1
    assert method_log_interval(build_method("modality_dropout+mwam", spec)) == 1  # wrapped
    model = MultimodalModel(
        {"x": nn.Linear(3, 4), "z": nn.Linear(2, 4)}, build_method("mwam", spec)
    )
    assert FusionModule(model, TrainConfig()).log_every_n_steps == 1
    assert FusionModule(model, TrainConfig(), log_every_n_steps=7).log_every_n_steps == 7
