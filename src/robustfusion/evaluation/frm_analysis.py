"""Read, summarise and plot the FRM, T and K that MWAM logs during training.

The trainer logs ``MWAM.logged_values()`` every step into ``DIR/logs/metrics.csv`` as columns
``...mwam.frm.<modality>``, ``...mwam.T.<modality>`` and ``...mwam.K.<modality>`` (any prefix, such
as ``method/``), and the shape FRM was computed on as ``...mwam.h.<modality>`` and
``...mwam.w.<modality>`` (``h = 0`` for a vector). The dominant modality is the one with the highest
mean ``T`` (Eq. 6) over the last logged epoch: by the paper's reading its low-frequency content is
learned fastest, so MWAM slows it down (``K < 1``).

That reading has a domain and a precondition, which :func:`frm_warnings` checks:

* the paper defines FRM on 2-D maps of one size (RGB, depth, IR images); on vectors (our 1-D block
  DCT) or on maps of different sizes it is outside that domain;
* FRM must move with training to say anything about the network. On raw inputs without
  augmentation (MWAM's default ``source="input"``) every sample always gives the same value, so FRM
  only fluctuates with batch composition: it measures the data (how smooth each modality's blocks
  are), not the network's preference. On avdigits it calls the spectrogram dominant while the image
  is what the model relies on (notes/issue-4.md).
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
_COLUMN = re.compile(r"(?:^|/)mwam\.(frm|T|K|h|w)\.(.+)$")
#: Relative spread of the per-epoch mean FRM below which FRM counts as constant over training.
CONSTANT_TOLERANCE = 0.05


@dataclass
class FrmLog:
    """Per-step MWAM statistics of one run: ``values[quantity][modality]`` aligned with ``steps``.

    Quantities: ``frm``, ``T``, ``K``, and ``h``/``w`` (the shape FRM was computed on) when logged.
    """

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
        modalities = tuple(dict.fromkeys(m for q, m in columns.values() if q in ("frm", "T", "K")))
        kinds = {quantity for quantity, _ in columns.values()}
        quantities = ["frm", "T", "K"] + [q for q in ("h", "w") if q in kinds]
        log = FrmLog(
            steps=[],
            epochs=[],
            modalities=modalities,
            values={q: {m: [] for m in modalities} for q in quantities},
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
            for quantity, series in log.values.items():
                for modality, values in series.items():
                    values.append(parsed.get((quantity, modality), math.nan))
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


def frm_shapes(log: FrmLog) -> dict[str, tuple[int, int]]:
    """``{modality: (h, w)}`` of the last logged shape FRM was computed on (``h = 0``: a vector);
    empty when the log has no shape columns (runs trained before they were logged)."""
    if "h" not in log.values or "w" not in log.values:
        return {}
    shapes: dict[str, tuple[int, int]] = {}
    for m in log.modalities:
        pairs = [
            (h, w)
            for h, w in zip(log.series("h", m), log.series("w", m), strict=True)
            if not (math.isnan(h) or math.isnan(w))
        ]
        if pairs:
            shapes[m] = (int(pairs[-1][0]), int(pairs[-1][1]))
    return shapes


def frm_spread(log: FrmLog) -> float | None:
    """The largest relative spread ``(max - min) / mean`` of a modality's FRM over training:
    over the per-epoch means, or with one epoch over the means of the two halves of its steps.
    ``None`` when there are too few steps to tell (fewer than two epochs and fewer than 4 steps)."""
    epochs = sorted(set(log.epochs))
    spreads = []
    for m in log.modalities:
        series = log.series("frm", m)
        if len(epochs) >= 2:
            means = [
                _mean([v for v, e in zip(series, log.epochs, strict=True) if e == epoch])
                for epoch in epochs
            ]
        else:
            finite = [v for v in series if not math.isnan(v)]
            if len(finite) < 4:
                return None
            half = len(finite) // 2
            means = [_mean(finite[:half]), _mean(finite[half:])]
        means = [v for v in means if not math.isnan(v)]
        if len(means) < 2:
            return None
        centre = sum(means) / len(means)
        spreads.append((max(means) - min(means)) / abs(centre) if centre else math.inf)
    return max(spreads) if spreads else None


def frm_warnings(log: FrmLog, tolerance: float = CONSTANT_TOLERANCE) -> list[str]:
    """One-line caveats on what the run's FRM can mean (module docstring): vector inputs or
    features, maps of different sizes, and FRM constant over training."""
    warnings: list[str] = []
    shapes = frm_shapes(log)
    vectors = [m for m, (h, _) in shapes.items() if h == 0]
    if vectors:
        warnings.append(
            f"FRM was computed on vectors ({', '.join(vectors)}; our 1-D block DCT): outside the "
            "paper's domain (2-D maps of one size), so T and K are a heuristic there"
        )
    maps = {m: shape for m, shape in shapes.items() if shape[0] > 0}
    if len(set(maps.values())) > 1:
        sizes = ", ".join(f"{m} {h}x{w}" for m, (h, w) in maps.items())
        warnings.append(
            f"FRM was computed on maps of different sizes ({sizes}): outside the paper's domain "
            "(2-D maps of one size); T compares smoothness across sizes"
        )
    spread = frm_spread(log)
    if spread is not None and spread <= tolerance:
        warnings.append(
            f"FRM is constant over training (its means vary by at most {100 * spread:.1f}%): "
            "on inputs that do not change (raw inputs without augmentation, source=input) it "
            "measures the data, not what the network learns, so the modality it ranks first "
            "need not be the one the model relies on (notes/issue-4.md)"
        )
    return warnings


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
