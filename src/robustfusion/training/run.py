"""``train`` a configured run end to end, and ``load_run`` a finished one.

A run folder holds ``config.yaml`` (every setting, resolved), ``model.pt`` (the weights selected
on validation accuracy, a plain state dict), ``checkpoints/last.ckpt`` (Lightning's full state, for
``--resume``), ``logs/metrics.csv`` (per-step log), ``metrics.json`` (test metrics of the selected
model; no wall-clock fields, so identical runs give identical files) and ``timing.json``.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from robustfusion.atomic import save_state_dict, write_json
from robustfusion.data import DataSplits
from robustfusion.errors import CheckpointError, ConfigError
from robustfusion.model import MultimodalModel
from robustfusion.training.build import build_model, load_data
from robustfusion.training.callbacks import BestModel, EpochEnd
from robustfusion.training.config import TrainConfig
from robustfusion.training.csv_log import prepend_rows, read_rows
from robustfusion.training.datamodule import MultimodalDataModule
from robustfusion.training.lightning_module import FusionModule
from robustfusion.training.seeding import seed_all

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.json"
TIMING_FILE = "timing.json"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train, select the best validation epoch, evaluate it on test; return ``metrics.json``'s data.

    With ``resume`` the run continues from ``DIR/checkpoints/last.ckpt`` when there is one (and
    starts afresh otherwise); the folder's saved config must then match ``config``.
    """
    from robustfusion.evaluation.evaluate import evaluate_model

    config = config.resolved()
    out = Path(config.out)  # type: ignore[arg-type]
    checkpoint = out / LAST_CHECKPOINT
    ckpt_path = None
    if resume and checkpoint.is_file():
        _check_same_config(config, out / CONFIG_FILE)
        ckpt_path = str(checkpoint)
    elif rank_zero_only.rank == 0:
        # a fresh run: results of an earlier run in this folder must not outlive it
        for stale in (checkpoint, out / MODEL_FILE, out / METRICS_FILE, out / TIMING_FILE):
            stale.unlink(missing_ok=True)

    splits = load_data(config)
    seed_all(config.seed)
    model = build_model(config, splits.info)
    module = FusionModule(model, config)
    data = MultimodalDataModule(
        splits, config.batch_size, config.eval_batch_size, config.seed, config.num_workers
    )
    out.mkdir(parents=True, exist_ok=True)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    log_file = out / "logs" / "metrics.csv"
    previous_log = read_rows(log_file) if ckpt_path is not None else []
    best = BestModel()
    started = time.perf_counter()
    with _quiet_lightning():
        trainer = _trainer(config, out, [best, EpochEnd(best, checkpoint)], progress)
        if trainer.is_global_zero:
            config.to_yaml(out / CONFIG_FILE)
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    fit_seconds = time.perf_counter() - started
    if not trainer.is_global_zero:
        return {}
    prepend_rows(log_file, previous_log)

    model = model.cpu()
    if best.best_state:
        model.load_state_dict(best.best_state)
    save_state_dict(out / MODEL_FILE, model.state_dict())
    seed_all(config.seed)
    test = evaluate_model(model, splits.test, splits.info, batch_size=config.eval_batch_size)
    metrics = {
        **test,
        "dataset": splits.info.name,
        "method": config.method,
        "fusion": config.fusion,
        "seed": config.seed,
        "epochs": config.epochs,
        "best_epoch": best.best_epoch,
        "val_accuracy": best.best_accuracy,
        "split": "test",
    }
    write_json(out / METRICS_FILE, metrics)
    write_json(
        out / TIMING_FILE, {"fit_seconds": round(fit_seconds, 3), "resumed": ckpt_path is not None}
    )
    return metrics


def _trainer(
    config: TrainConfig, out: Path, callbacks: list[L.Callback], progress: bool
) -> L.Trainer:
    """A Trainer with Lightning's per-run overhead (summary, sanity checks) switched off."""
    return L.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        strategy=config.strategy,
        precision=config.precision,  # type: ignore[arg-type]
        deterministic="warn" if config.deterministic else False,
        gradient_clip_val=config.gradient_clip_val,
        default_root_dir=str(out),
        logger=CSVLogger(save_dir=str(out), name="logs", version=""),
        log_every_n_steps=1,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
        num_sanity_val_steps=0,
    )


def load_run(run_dir: Path) -> tuple[MultimodalModel, DataSplits, TrainConfig]:
    """The selected model of a finished run (in eval mode, on CPU), its data splits and config."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(
            f"{run_dir} is not a training run (no {CONFIG_FILE}): train one with robustfusion train --out {run_dir}"
        )
    config = TrainConfig.from_yaml(config_path)
    splits = load_data(config)
    model = build_model(config, splits.info)
    model.load_state_dict(load_weights(run_dir / MODEL_FILE, model))
    return model.eval(), splits, config


def load_weights(path: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Read a state dict saved by :func:`train` (``weights_only=True``) and check it fits ``model``."""
    retrain = (
        f"retrain with robustfusion train --config {path.parent / CONFIG_FILE} --out {path.parent}"
    )
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist: {retrain}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged zip/pickle data
        raise CheckpointError(f"checkpoint {path} is corrupted or truncated: {retrain}") from error
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} is not a state dict: {retrain}")
    expected = model.state_dict()
    if set(state) != set(expected) or any(
        tuple(state[k].shape) != tuple(v.shape) for k, v in expected.items()
    ):
        raise CheckpointError(
            f"checkpoint {path} does not match the model of {path.parent / CONFIG_FILE}: {retrain}"
        )
    return state


def _check_same_config(config: TrainConfig, saved_path: Path) -> None:
    if not saved_path.is_file():
        return
    saved = TrainConfig.from_yaml(saved_path).to_dict()
    current = config.to_dict()
    differ = [k for k in current if current[k] != saved.get(k)]
    if differ:
        raise ConfigError(
            f"cannot resume: {saved_path.parent} was trained with other settings ({', '.join(differ)}); "
            "resume with the same settings (--config that config.yaml) or use a new --out"
        )


class _quiet_lightning:
    """Silence Lightning's banner lines and advice warnings that are noise for this CLI, and
    restore torch's deterministic-algorithms flag afterwards."""

    def __enter__(self) -> None:
        # Trainer(deterministic=...) switches torch's global flag; give the caller its own back
        self._deterministic = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        )
        self._loggers = [
            logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")
        ]
        self._levels = [logger.level for logger in self._loggers]
        for logger in self._loggers:
            logger.setLevel(logging.WARNING)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        for pattern in (
            ".*does not have many workers.*",
            ".*Checkpoint directory.*exists and is not empty.*",
            ".*Experiment logs directory.*exists and is not empty.*",
            ".*is smaller than the logging interval.*",
            ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*",
            ".*It is recommended to use `self.log\\('val_acc'.*",  # reduced by hand already
        ):
            warnings.filterwarnings("ignore", message=pattern)

    def __exit__(self, *exc: object) -> None:
        enabled, warn_only = self._deterministic
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        self._warnings.__exit__(*exc)
        for logger, level in zip(self._loggers, self._levels, strict=True):
            logger.setLevel(level)
