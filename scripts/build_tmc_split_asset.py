"""Rebuild ``src/robustfusion/data/splits/mfeat_tmc/test.txt``: the rows of the shipped
``mfeat.npz`` that TMC's ``handwritten_6views.mat`` holds as its test set.

TMC (hanmenghan/TMC, ``TMC ICLR/datasets/handwritten_6views.mat``) stores the six UCI views
already split 1600/400 (``x1..x6_train/test``, views in the order pix, fou, fac, zer, kar, mor,
labels 1-10), without row numbers. Each of its rows is matched to a row of ``mfeat.npz`` of the
same class by a one-to-one assignment on the standardised concatenated views (scipy's
``linear_sum_assignment``); every match is exact up to the rounding of the .mat file (largest
squared standardised distance about 3e-7, where distinct rows are >= 1 apart). Six mfeat rows
are exact duplicates of another; either copy gives identical data. Usage::

    git -C TMC show "HEAD:TMC ICLR/datasets/handwritten_6views.mat" > handwritten_6views.mat
    python scripts/build_tmc_split_asset.py handwritten_6views.mat
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.io import loadmat
from scipy.optimize import linear_sum_assignment

from robustfusion.atomic import write_text
from robustfusion.data.datasets.mfeat import asset_path

TMC_VIEWS = ("pix", "fou", "fac", "zer", "kar", "mor")  # x1..x6
DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "src/robustfusion/data/splits/mfeat_tmc/test.txt"
)
#: A matched pair farther apart than this (squared standardised distance) is not the same row.
MAX_DISTANCE = 1e-3


def match_rows(mat_path: Path) -> dict[str, np.ndarray]:
    """``{"train": rows [1600], "test": rows [400]}``: mfeat row of every TMC row, in TMC order."""
    mat = loadmat(str(mat_path))
    with np.load(asset_path(), allow_pickle=False) as archive:
        ours = np.concatenate([archive[v].astype(np.float64) for v in TMC_VIEWS], axis=1)
        labels = archive["y"]
    mean, std = ours.mean(0), ours.std(0) + 1e-9
    ours = (ours - mean) / std
    theirs_all = {
        split: (
            np.concatenate([mat[f"x{k + 1}_{split}"].astype(np.float64) for k in range(6)], axis=1)
            - mean
        )
        / std
        for split in ("train", "test")
    }
    y_all = {split: mat[f"gt_{split}"].ravel().astype(np.int64) - 1 for split in ("train", "test")}
    stacked = np.concatenate([theirs_all["train"], theirs_all["test"]])
    y = np.concatenate([y_all["train"], y_all["test"]])
    rows = np.full(y.size, -1, dtype=np.int64)
    for label in range(10):
        theirs = np.flatnonzero(y == label)
        mine = np.flatnonzero(labels == label)
        cost = ((stacked[theirs][:, None, :] - ours[mine][None]) ** 2).sum(-1)
        r, c = linear_sum_assignment(cost)
        if cost[r, c].max() > MAX_DISTANCE:
            raise SystemExit(f"class {label}: a TMC row has no exact match in mfeat.npz")
        rows[theirs[r]] = mine[c]
    if len(set(rows.tolist())) != rows.size or (rows < 0).any():
        raise SystemExit("the matching is not one-to-one")
    n_train = y_all["train"].size
    return {"train": rows[:n_train], "test": rows[n_train:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mat", type=Path, help="TMC's handwritten_6views.mat")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    rows = match_rows(args.mat)
    test = np.sort(rows["test"])
    write_text(args.out, "".join(f"{i}\n" for i in test))
    print(f"wrote {args.out}: {test.size} test rows (train: the other {rows['train'].size})")


if __name__ == "__main__":
    main()
