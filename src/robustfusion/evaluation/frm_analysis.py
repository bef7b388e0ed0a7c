"""Read, summarise and plot the FRM, T and K that MWAM logs during training.

The trainer logs ``MWAM.logged_values()`` every step into ``DIR/logs/metrics.csv`` as columns
``...mwam.frm.<modality>``, ``...mwam.T.<modality>`` and ``...mwam.K.<modality>`` (any prefix, such
as ``method/``). The dominant modality is the one with the highest mean ``T`` (Eq. 6) over the last
logged epoch: its low-frequency content is learned fastest, so MWAM slows it down (``K < 1``).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from robustfusion.atomic import save_figure
from robustfusion.errors import DataError

LOG_FILE = Path("logs") / "metrics.csv"
_COLUMN = re.compile(r"(?:^|/)mwam\.(frm|T|K)\.(.+)$")


@dataclass
class FrmLog:
    """Per-step MWAM statistics of one run: ``values[quantity][modality]`` aligned with ``steps``."""

    steps: list[int]
    epochs: list[int]
    modalities: tuple[str, ...]
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def series(self, quantity: str, modality: str) -> list[float]:
        return self.values[quantity][modality]


def _log_path(path: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / LOG_FILE
    if not path.is_file():
        raise DataError(
            f"no training log at {path}: give a run folder trained with --method mwam (or mwam+X)"
        )
    return path


def read_frm_log(path: Path) -> FrmLog:
    """Parse the MWAM columns of a run's ``logs/metrics.csv`` (``path``: the run folder or the CSV)."""
    csv_path = _log_path(path)
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = {
            name: match.groups()
            for name in reader.fieldnames or []
            if (match := _COLUMN.search(name))
        }
        if not columns:
            raise DataError(
                f"{csv_path} has no MWAM statistics (mwam.frm.*, mwam.K.*): train the run with "
                "--method mwam or mwam+X"
            )
        modalities = tuple(dict.fromkeys(m for _, m in columns.values()))
        log = FrmLog(
            steps=[],
            epochs=[],
            modalities=modalities,
            values={q: {m: [] for m in modalities} for q in ("frm", "T", "K")},
        )
        for row in reader:
            parsed = {key: _number(row.get(name, "")) for name, key in columns.items()}
            if all(math.isnan(v) for v in parsed.values()):
                continue  # validation or epoch-summary row
            log.steps.append(
                int(_number(row.get("step", "")) if row.get("step") else len(log.steps))
            )
            epoch = _number(row.get("epoch", ""))
            log.epochs.append(int(epoch) if not math.isnan(epoch) else 0)
            for (quantity, modality), value in parsed.items():
                log.values[quantity][modality].append(value)
    if not log.steps:
        raise DataError(f"{csv_path} has MWAM columns but no logged training step: train longer")
    return log


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def epoch_means(log: FrmLog) -> dict[int, dict[str, dict[str, float]]]:
    """``{epoch: {quantity: {modality: mean over the epoch's steps}}}``."""
    result: dict[int, dict[str, dict[str, float]]] = {}
    for epoch in sorted(set(log.epochs)):
        rows = [i for i, e in enumerate(log.epochs) if e == epoch]
        result[epoch] = {
            quantity: {m: _mean([series[m][i] for i in rows]) for m in log.modalities}
            for quantity, series in log.values.items()
        }
    return result


def dominant_modality(log: FrmLog) -> tuple[str, dict[str, float]]:
    """The modality with the highest mean ``T`` over the last epoch, and every modality's mean ``T``."""
    last = epoch_means(log)[max(log.epochs)]["T"]
    ranked = {m: v for m, v in last.items() if not math.isnan(v)}
    if not ranked:
        raise DataError("the last epoch has no T values: train the run for at least one step")
    return max(ranked, key=ranked.__getitem__), last


def plot_frm(log: FrmLog, out: Path, title: str = "") -> Path:
    """Plot FRM (log scale) and K per modality over steps into ``out`` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for m in log.modalities:
        top.plot(log.steps, log.series("frm", m), label=m)
        bottom.plot(log.steps, log.series("K", m), label=m)
    top.set_yscale("log")
    top.set_ylabel("FRM (Eq. 4)")
    bottom.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    bottom.set_ylabel("K (Eq. 5)")
    bottom.set_xlabel("training step")
    top.legend()
    if title:
        top.set_title(title)
    figure.tight_layout()
    save_figure(figure, out, dpi=100)
    return out
