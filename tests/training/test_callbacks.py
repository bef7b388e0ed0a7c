"""EpochEnd: when last.ckpt is written (first and last epoch, then at most every every_s)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from robustfusion.data import DatasetInfo, DataSplits, ModalityInfo, TensorMultimodalDataset
from robustfusion.errors import ConfigError
from robustfusion.methods.base import MethodSpec, build_method
from robustfusion.model import MultimodalModel
from robustfusion.training.callbacks import BestModel, EpochEnd
from robustfusion.training.config import TrainConfig
from robustfusion.training.datamodule import MultimodalDataModule
from robustfusion.training.lightning_module import FusionModule


def _splits(n: int) -> DataSplits:
    generator = torch.Generator().manual_seed(0)
    data = {
        "x": torch.randn(n, 3, generator=generator),
        "z": torch.randn(n, 2, generator=generator),
    }
    dataset = TensorMultimodalDataset(data, torch.arange(n) % 2)
    info = DatasetInfo("toy", (ModalityInfo("x", (3,)), ModalityInfo("z", (2,))), num_classes=2)
    return DataSplits(dataset, dataset, dataset, info)


def _fit(tmp_path: Path, every_s: float, epochs: int = 4) -> EpochEnd:
    spec = MethodSpec(modalities=("x", "z"), feature_dims={"x": 4, "z": 4}, num_classes=2)
    torch.manual_seed(0)
    model = MultimodalModel(
        {"x": nn.Linear(3, 4), "z": nn.Linear(2, 4)}, build_method("static", spec)
    )
    best = BestModel()
    end = EpochEnd(best, tmp_path / "last.ckpt", every_s=every_s)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[best, end],
    )
    module = FusionModule(model, TrainConfig(epochs=epochs, batch_size=8, lr=0.1))
    trainer.fit(module, datamodule=MultimodalDataModule(_splits(16), 8, 8, seed=0))
    return end


@pytest.mark.filterwarnings("ignore:.*LeafSpec.*")
def test_checkpoint_after_first_and_last_epoch_and_when_due(tmp_path: Path) -> None:
    rare = _fit(tmp_path / "rare", every_s=3600.0)
    assert rare.saved_epochs == [0, 3]
    saved = torch.load(tmp_path / "rare" / "last.ckpt", weights_only=False)
    assert saved["epoch"] == 3 and not (tmp_path / "rare" / ".last.ckpt.tmp").exists()
    assert _fit(tmp_path / "every", every_s=0.0).saved_epochs == [0, 1, 2, 3]
    with pytest.raises(ConfigError, match="checkpoint interval"):
        EpochEnd(BestModel(), tmp_path / "x.ckpt", every_s=-1.0)
