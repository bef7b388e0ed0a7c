"""``train`` a configured run end to end, and ``load_run`` a finished one.

A run folder holds ``config.yaml`` (every setting, resolved), ``model.pt`` (the weights selected
on validation accuracy, a plain state dict), ``checkpoints/last.ckpt`` (Lightning's full state, for
``--resume``), ``logs/metrics.csv`` (per-step log), ``metrics.json`` (test metrics of the selected
model; no wall-clock fields, so identical runs give identical files) and ``timing.json``.

What a folder holds is never lost to a mistake or a rerun:

* every setting, the hardware flags included, is checked before anything is written;
* a folder holding a run is refused unless the caller resumes it (``resume``) or replaces it
  (``overwrite``); a replacement, and the extension of a finished run (``--resume --epochs N``),
  is built in a hidden sibling folder and swapped in only when it completes
  (:func:`robustfusion.atomic.replace_directory`);
* a lock (:class:`robustfusion.lock.FolderLock`) stops a second process writing the same folder;
* Ctrl-C raises :class:`TrainingInterrupted` naming the epochs done and how to resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shlex
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from robustfusion.atomic import (
    recover_replaced_directory,
    replace_directory,
    save_state_dict,
    sibling_directory,
    write_json,
)
from robustfusion.data import DataSplits
from robustfusion.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    RunFolderError,
    TrainingInterrupted,
)
from robustfusion.lock import FolderLock
from robustfusion.model import MultimodalModel
from robustfusion.tasks import task_of
from robustfusion.threads import available_cores
from robustfusion.training.build import build_model, load_data
from robustfusion.training.callbacks import BestModel, EpochEnd
from robustfusion.training.config import RESUMABLE_CHANGES, TrainConfig
from robustfusion.training.csv_log import prepend_rows, read_rows
from robustfusion.training.datamodule import MultimodalDataModule
from robustfusion.training.lightning_module import FusionModule
from robustfusion.training.seeding import seed_all

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.json"
TIMING_FILE = "timing.json"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
LOG_FILE = Path("logs") / "metrics.csv"
#: The files that make a folder a run folder.
RUN_FILES = (CONFIG_FILE, MODEL_FILE, METRICS_FILE, TIMING_FILE, str(LAST_CHECKPOINT))
#: Test-only: after this epoch's checkpoint, touch the file named after the colon and wait while
#: it exists (``"1:/tmp/paused"``), so that a test can act on a run that is surely mid-training.
PAUSE_AFTER_EPOCH_ENV = "ROBUSTFUSION_TEST_PAUSE_AFTER_EPOCH"

log = logging.getLogger("robustfusion")


def train(
    config: TrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train, select the best validation epoch, evaluate it on test; return ``metrics.json``'s data.

    ``config.out`` must be empty or absent, unless ``resume`` (continue its run from
    ``last.ckpt``: the settings must match the saved ones except ``out``, ``accelerator``,
    ``num_workers`` and ``epochs``, which may grow to extend a finished run; a folder holding no
    run starts afresh) or ``overwrite`` (replace its run once the new one completes).
    Raises :class:`RunFolderError` (refused), :class:`ConfigError`, :class:`CheckpointError`,
    :class:`FolderBusyError` (another process writes the folder) and, on Ctrl-C,
    :class:`TrainingInterrupted`.
    """
    if resume and overwrite:
        raise ConfigError(
            "--resume and --overwrite exclude each other: --resume continues the run in --out, "
            "--overwrite replaces it"
        )
    config = config.resolved()
    out = Path(config.out)  # type: ignore[arg-type]
    if rank_zero_only.rank != 0:  # a DDP process started by rank 0: rank 0 decided and writes
        return _train_other_rank(config, resume, progress)
    check_hardware(config)
    try:
        with _created_parents(out), FolderLock(out):
            for line in recover_replaced_directory(out):
                log.warning("%s", line)
            plan = plan_run(RunFolder.inspect(out), config, resume, overwrite)
            if plan.mode == "done":
                log.warning(
                    "%s already finished its %d epochs: nothing to do (extend it with "
                    "--resume --epochs N)",
                    out,
                    plan.epochs_done,
                )
                return json.loads((out / METRICS_FILE).read_text(encoding="utf-8"))
            splits = load_data(config)
            seed_all(config.seed)
            model = build_model(config, splits.info)
            return _execute(plan, config, splits, model, progress)
    except KeyboardInterrupt as interrupt:
        if isinstance(interrupt, TrainingInterrupted):
            raise
        raise TrainingInterrupted(
            f"interrupted before training started; nothing was written to {out}"
        ) from None


# ---------------------------------------------------------------------- the run folder
@dataclass(frozen=True)
class RunFolder:
    """What a folder holds: ``empty`` (absent or empty), ``unfinished`` (``config.yaml`` but no
    ``metrics.json``), ``finished``, ``damaged`` (run files without ``config.yaml``) or
    ``foreign`` (other files: never written to)."""

    path: Path
    state: str

    @classmethod
    def inspect(cls, path: Path) -> RunFolder:
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunFolderError(f"--out {path} is a file, not a folder: choose another --out")
        names = [p.name for p in path.iterdir()] if path.is_dir() else []
        if not names:
            return cls(path, "empty")
        if (path / CONFIG_FILE).is_file():
            finished = (path / METRICS_FILE).is_file() and (path / MODEL_FILE).is_file()
            return cls(path, "finished" if finished else "unfinished")
        if any((path / name).exists() for name in RUN_FILES):
            return cls(path, "damaged")
        return cls(path, "foreign")

    def saved_config(self) -> TrainConfig:
        try:
            return TrainConfig.from_yaml(self.path / CONFIG_FILE)
        except ConfigError as error:
            raise RunFolderError(
                f"cannot resume {self.path}: its {CONFIG_FILE} is unreadable ({error}); replace "
                "the run with --overwrite"
            ) from None

    def describe(self) -> str:
        """``a finished run (static on mfeat, 30 epochs, test accuracy 0.97)``."""
        try:
            saved = TrainConfig.from_yaml(self.path / CONFIG_FILE)
            what = f"{saved.method} on {saved.dataset or Path(str(saved.data)).name}"
            what += f", {saved.epochs} epochs"
        except ConfigError:
            what = "unreadable config.yaml"
        if self.state == "finished":
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                metrics = json.loads((self.path / METRICS_FILE).read_text(encoding="utf-8"))
                task = task_of(str(metrics.get("task", "classification")))
                what += f", test {task.primary_spec.title} {float(metrics[task.primary]):.4f}"
        return f"a{'n' if self.state == 'unfinished' else ''} {self.state} run ({what})"


@dataclass(frozen=True)
class Plan:
    """How a call to :func:`train` uses its folder.

    ``mode``: ``fresh`` (an empty folder, written in place), ``resume`` (an unfinished run,
    continued in place), ``extend`` (a finished run given more epochs, continued in a copy that
    replaces it when done), ``overwrite`` (a new run that replaces the folder's when done) or
    ``done`` (a finished run resumed with its own epochs: nothing to do). ``checkpoint``: resume
    from ``last.ckpt``; ``epochs_done``: epochs in that checkpoint (or of the finished run).
    """

    mode: str
    checkpoint: bool = False
    epochs_done: int = 0


def plan_run(folder: RunFolder, config: TrainConfig, resume: bool, overwrite: bool) -> Plan:
    """Decide what :func:`train` does with ``folder``; raises a one-line error when refused."""
    out = folder.path
    state = folder.state
    if state == "foreign":
        found = ", ".join(sorted(p.name for p in out.iterdir())[:3])
        raise RunFolderError(
            f"{out} is not empty and holds no run (found {found}): choose a new or empty --out"
        )
    if state == "empty":
        return Plan("fresh")
    if state == "damaged":
        if overwrite:
            return Plan("overwrite")
        raise RunFolderError(
            f"{out} holds a damaged run (run files but no {CONFIG_FILE}): replace it with "
            "--overwrite or choose another --out"
        )
    if overwrite:
        return Plan("overwrite")
    if not resume:
        hint = (
            "continue it with --resume"
            if state == "unfinished"
            else ("extend it with --resume --epochs N")
        )
        raise RunFolderError(
            f"{out} holds {folder.describe()}: {hint}, replace it with --overwrite, or choose "
            "another --out"
        )
    saved = folder.saved_config()
    check_resumable(saved, config, out)
    if state == "finished" and config.epochs == saved.epochs:
        return Plan("done", epochs_done=saved.epochs)
    checkpoint = out / LAST_CHECKPOINT
    done = checkpoint_epochs(checkpoint) if checkpoint.is_file() else 0
    if config.epochs < done:
        raise ConfigError(
            f"cannot resume {out} with --epochs {config.epochs}: it has done {done} epochs "
            f"already; give --epochs {done} or more, or train anew with --overwrite"
        )
    if state == "unfinished":
        return Plan("resume", checkpoint=done > 0, epochs_done=done)
    if done == 0:
        raise CheckpointError(
            f"cannot extend {out}: it has no {LAST_CHECKPOINT} to continue from; retrain it "
            f"with --overwrite --epochs {config.epochs}"
        )
    return Plan("extend", checkpoint=True, epochs_done=done)


def check_resumable(saved: TrainConfig, config: TrainConfig, out: Path) -> None:
    """Raise unless ``config`` continues ``saved`` (see :data:`RESUMABLE_CHANGES`)."""
    before, after = saved.to_dict(), config.to_dict()
    differ = [k for k in before if k not in RESUMABLE_CHANGES and before[k] != after[k]]
    if differ:
        changes = "; ".join(f"{k} {before[k]!r} -> {after[k]!r}" for k in differ[:4])
        raise ConfigError(
            f"cannot resume {out}: it was trained with other settings ({changes}); resume with "
            f"its own settings (robustfusion train --resume --out {out}), or train anew with "
            "--overwrite or a new --out"
        )


def checkpoint_epochs(path: Path) -> int:
    """The number of epochs a ``last.ckpt`` holds; a one-line CheckpointError when damaged."""
    fix = "restore the file, or train anew with --overwrite"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged zip/pickle data
        raise CheckpointError(f"checkpoint {path} is corrupted or truncated: {fix}") from error
    if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
        raise CheckpointError(f"{path} is not a checkpoint of robustfusion train: {fix}")
    return int(state["epoch"]) + 1  # saved at the end of epoch ``epoch`` (0-based)


# ---------------------------------------------------------------------- hardware
def available_accelerators() -> list[str]:
    names = ["cpu"]
    if torch.cuda.is_available():
        names.append("gpu")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    return names


def check_hardware(config: TrainConfig) -> None:
    """Raise a one-line ConfigError when Lightning cannot run with ``config``'s accelerator,
    devices, strategy and precision here (building a Trainer checks them and writes nothing)."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    if config.accelerator == "cpu" and isinstance(config.devices, int):
        cores = available_cores()
        if config.devices > cores:
            raise ConfigError(
                f"--devices {config.devices} asks for {config.devices} CPU processes (DDP) on a "
                f"machine where this process may use {cores} core(s): give --devices {cores} or "
                "fewer (one process already uses every core)"
            )
    try:
        with _quiet_lightning():
            L.Trainer(
                accelerator=config.accelerator,
                devices=config.devices,
                strategy=config.strategy,
                precision=config.precision,  # type: ignore[arg-type]
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
            )
    except (MisconfigurationException, ValueError, TypeError, ImportError, RuntimeError) as error:
        text = " ".join(str(error).split())
        lowered = text.lower()
        flag = next(
            (f for f in ("precision", "strategy", "devices") if f in lowered), "accelerator"
        )
        raise ConfigError(
            f"--{flag} {getattr(config, flag)} cannot run here (accelerator {config.accelerator}, "
            f"devices {config.devices}, strategy {config.strategy}, precision {config.precision}): "
            f"{text.rstrip('.')}; this machine offers {', '.join(available_accelerators())}: "
            f"change --{flag}"
        ) from None


# ---------------------------------------------------------------------- training
class _EpochTracker(L.Callback):
    """Counts the epochs whose checkpoint is written and notices Ctrl-C (Lightning turns it
    into ``SystemExit(1)``). Placed after :class:`EpochEnd`."""

    def __init__(self) -> None:
        self.done = 0
        self.interrupted = False
        pause = os.environ.get(PAUSE_AFTER_EPOCH_ENV, "")
        epoch, _, marker = pause.partition(":")
        self.pause = (int(epoch), Path(marker)) if epoch.isdigit() and marker else None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.done = int(trainer.current_epoch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.done = int(trainer.current_epoch) + 1
        if self.pause is not None and self.pause[0] == trainer.current_epoch:
            marker = self.pause[1]
            marker.touch()
            deadline = time.monotonic() + 120
            while marker.exists() and time.monotonic() < deadline:
                time.sleep(0.02)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.interrupted = True


class _Interrupted(Exception):
    """Internal: Ctrl-C after ``done`` epochs (turned into :class:`TrainingInterrupted`)."""

    def __init__(self, done: int) -> None:
        super().__init__(done)
        self.done = done


def _execute(
    plan: Plan, config: TrainConfig, splits: DataSplits, model: MultimodalModel, progress: bool
) -> dict[str, Any]:
    out = Path(config.out)  # type: ignore[arg-type]
    in_place = plan.mode in ("fresh", "resume")
    existed = out.exists()
    workdir = out if in_place else sibling_directory(out)
    try:
        if plan.mode == "extend":
            _carry_over(out, workdir)
        checkpoint = workdir / LAST_CHECKPOINT if plan.checkpoint else None
        metrics = _fit_and_test(config, workdir, checkpoint, splits, model, progress, plan.mode)
        if not in_place:
            replace_directory(workdir, out)
        return metrics
    except _Interrupted as interrupt:
        raise TrainingInterrupted(
            _interrupted_message(plan, config, interrupt.done), interrupt.done
        ) from None
    except BaseException:
        if plan.mode == "fresh" and not (workdir / LAST_CHECKPOINT).exists():
            _empty(out, remove=not existed)  # no epoch finished: nothing worth keeping
        raise
    finally:
        if not in_place and workdir.exists():
            shutil.rmtree(workdir, ignore_errors=True)


def _carry_over(run: Path, workdir: Path) -> None:
    """Copy what an extension continues from (config, checkpoint, log) into ``workdir``; other
    files (evaluations of the shorter run's model) would describe a model that no longer exists
    and are not carried over (a note names them)."""
    for name in (CONFIG_FILE, str(LAST_CHECKPOINT), str(LOG_FILE)):
        if (run / name).is_file():
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(run / name, workdir / name)
    kept = {Path(n).parts[0] for n in (*RUN_FILES, str(LOG_FILE))}
    left = sorted(p.name for p in run.iterdir() if p.name not in kept)
    if left:
        log.warning(
            "not carried over to the extended run (they describe the %s-epoch model): %s",
            TrainConfig.from_yaml(run / CONFIG_FILE).epochs,
            ", ".join(left),
        )


def _interrupted_message(plan: Plan, config: TrainConfig, done: int) -> str:
    out = shlex.quote(str(config.out))
    if plan.mode == "overwrite":
        return (
            f"interrupted after epoch {done}; nothing was replaced: {out} still holds its "
            "earlier run (run the same command again to replace it)"
        )
    if plan.mode == "extend":
        return (
            f"interrupted after epoch {done}; nothing was replaced: {out} still holds its "
            f"{plan.epochs_done}-epoch run; extend it with: robustfusion train --resume "
            f"--epochs {config.epochs} --out {out}"
        )
    return f"interrupted after epoch {done}; resume with: robustfusion train --resume --out {out}"


def _fit_and_test(
    config: TrainConfig,
    workdir: Path,
    checkpoint: Path | None,
    splits: DataSplits,
    model: MultimodalModel,
    progress: bool,
    mode: str,
) -> dict[str, Any]:
    """Train in ``workdir`` (from ``checkpoint`` when given), then test the selected model and
    write the run's files there. Rank 0 only."""
    from robustfusion.evaluation.evaluate import evaluate_model

    tracker = _EpochTracker()
    try:
        module = FusionModule(model, config)
        data = MultimodalDataModule(
            splits, config.batch_size, config.eval_batch_size, config.seed, config.num_workers
        )
        last = workdir / LAST_CHECKPOINT
        last.parent.mkdir(parents=True, exist_ok=True)
        config.to_yaml(workdir / CONFIG_FILE)  # first: from now on the folder is a run
        previous_log = read_rows(workdir / LOG_FILE) if checkpoint is not None else []
        best = BestModel(config.selection)
        started = time.perf_counter()
        with _quiet_lightning(), _sigint_restored():
            trainer = _trainer(config, workdir, [best, EpochEnd(best, last), tracker], progress)
            try:
                trainer.fit(
                    module,
                    datamodule=data,
                    ckpt_path=None if checkpoint is None else str(checkpoint),
                    weights_only=True,
                )
            except SystemExit:
                if tracker.interrupted:  # Lightning's answer to Ctrl-C
                    raise _Interrupted(tracker.done) from None
                raise
        fit_seconds = time.perf_counter() - started
        prepend_rows(workdir / LOG_FILE, previous_log)

        model = model.cpu()
        if best.best_state:
            model.load_state_dict(best.best_state)
        seed_all(config.seed)
        test = evaluate_model(model, splits.test, splits.info, batch_size=config.eval_batch_size)
    except KeyboardInterrupt:
        raise _Interrupted(tracker.done) from None
    metrics = {
        **test,
        "dataset": splits.info.name,
        "task": splits.info.task,
        "method": config.method,
        "fusion": config.fusion,
        "seed": config.seed,
        "epochs": config.epochs,
        "best_epoch": best.best_epoch,
        model.method.task.selection_key: best.best_accuracy,
        "split": "test",
    }
    save_state_dict(workdir / MODEL_FILE, model.state_dict())
    write_json(workdir / METRICS_FILE, metrics)  # last: its presence marks a finished run
    write_json(
        workdir / TIMING_FILE,
        {"fit_seconds": round(fit_seconds, 3), "resumed": checkpoint is not None, "mode": mode},
    )
    return metrics


def _train_other_rank(config: TrainConfig, resume: bool, progress: bool) -> dict[str, Any]:
    """A DDP process other than rank 0 (re-started by Lightning with the same command): it
    trains alongside rank 0 and writes nothing. It resumes from ``out``'s ``last.ckpt`` (the same
    bytes as the copy rank 0 continues when extending)."""
    out = Path(config.out)  # type: ignore[arg-type]
    checkpoint = out / LAST_CHECKPOINT
    splits = load_data(config)
    seed_all(config.seed)
    model = build_model(config, splits.info)
    module = FusionModule(model, config)
    data = MultimodalDataModule(
        splits, config.batch_size, config.eval_batch_size, config.seed, config.num_workers
    )
    best = BestModel(config.selection)
    with _quiet_lightning():
        trainer = _trainer(config, out, [best, EpochEnd(best, checkpoint)], progress)
        trainer.fit(
            module,
            datamodule=data,
            ckpt_path=str(checkpoint) if resume and checkpoint.is_file() else None,
            weights_only=True,
        )
    return {}


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
        default_root_dir=str(out),
        logger=CSVLogger(save_dir=str(out), name="logs", version=""),
        log_every_n_steps=1,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
        num_sanity_val_steps=0,
    )


@contextlib.contextmanager
def _sigint_restored() -> Iterator[None]:
    """Give back the caller's Ctrl-C handler (Lightning ignores SIGINT after catching one)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)


def _empty(folder: Path, remove: bool) -> None:
    """Delete what ``folder`` holds (and ``folder`` itself when ``remove``)."""
    if remove:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for item in folder.iterdir() if folder.is_dir() else ():
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)


@contextlib.contextmanager
def _created_parents(out: Path) -> Iterator[None]:
    """Remove the folders above ``out`` that this call created, when it fails and they are
    empty (a refused or failed first run leaves no trace)."""
    missing = []
    parent = Path(out).parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    try:
        yield
    except BaseException:
        for folder in missing:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def load_run(
    run_dir: Path, data: Path | None = None, data_root: Path | None = None
) -> tuple[MultimodalModel, DataSplits, TrainConfig]:
    """The selected model of a finished run (in eval mode, on CPU), its data splits and config.

    ``data`` (an ``.npz``) or ``data_root`` (a dataset's prepared folder) replace the places
    saved in the run's config, for a run whose data has moved; the config file is not changed.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(
            f"{run_dir} is not a training run (no {CONFIG_FILE}): train one with robustfusion train --out {run_dir}"
        )
    config = TrainConfig.from_yaml(config_path)
    if data is not None:
        if config.data is None:
            raise ConfigError(
                f"--data replaces a run's .npz file, but {run_dir} was trained on the dataset "
                f"{config.dataset}: give --data-root DIR instead"
            )
        config = dataclasses.replace(config, data=str(Path(data).expanduser().resolve()))
    if data_root is not None:
        config = dataclasses.replace(config, data_root=str(Path(data_root).expanduser().resolve()))
    if config.data is not None and not Path(config.data).is_file():
        raise DataError(
            f"the data file {config.data} of run {run_dir} does not exist (moved or deleted?): "
            f"give its new place with robustfusion evaluate {run_dir} --data FILE.npz"
        )
    try:
        splits = load_data(config)
    except DataError as error:
        if config.dataset is None or data_root is not None:
            raise
        raise DataError(
            f"{' '.join(str(error).split()).rstrip('.')} (run {run_dir}; if its prepared data "
            f"moved, give robustfusion evaluate {run_dir} --data-root DIR)"
        ) from None
    model = build_model(config, splits.info)
    model.load_state_dict(load_weights(run_dir / MODEL_FILE, model))
    return model.eval(), splits, config


def load_weights(path: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Read a state dict saved by :func:`train` (``weights_only=True``) and check it fits ``model``."""
    retrain = (
        f"retrain with robustfusion train --config {path.parent / CONFIG_FILE} --out "
        f"{path.parent} --overwrite (the damaged run stays until the new one completes)"
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
