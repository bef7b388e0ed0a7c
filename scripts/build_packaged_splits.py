"""Build the shipped splits of the packaged tables (``src/robustfusion/data/splits/<name>/``).

For every :data:`robustfusion.data.datasets.packaged_tables.SPECS` entry: read the package's file
(as ``robustfusion prepare NAME`` does), make the split of its rule (stratified 60/20/20 with seed
0, or the official train/test with a stratified 20 % of the training rows, seed 0, for validation)
and write ``train.txt``, ``val.txt``, ``test.txt`` (0-based row numbers of the file, ascending),
``labels.txt`` (the class of every row, which ``prepare`` checks) and ``PROVENANCE.md``. Run it
once; rerunning on the same files rewrites the same bytes. Usage::

    python scripts/build_packaged_splits.py                       # installed packages
    python scripts/build_packaged_splits.py --raw satellite=/usr/lib/R/site-library/mlbench \\
        --raw wdbc=scikit_learn-1.9.1-....whl                     # a folder, .deb, .rda or wheel
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from robustfusion.atomic import write_text
from robustfusion.data.datasets.packaged_tables import (
    SPECS,
    SPLIT_FILES,
    SPLIT_SEED,
    VAL_FRACTION,
    TableSpec,
    build_arrays,
    make_split,
    read_python_package_file,
    read_table,
)
from robustfusion.data.media.rdata import read_package_file

OUT = Path(__file__).resolve().parents[1] / "src/robustfusion/data/splits"


def source_sha256(table: TableSpec, raw: Path | None) -> str:
    """sha256 of the package file's bytes (the ``.rda`` or CSV itself, not its archive)."""
    if table.source == "r":
        data, _ = read_package_file(table.package, table.member, raw, table.install)
    else:
        data, _ = read_python_package_file(table.package, table.member, raw, table.install)
    return hashlib.sha256(data).hexdigest()


def build(table: TableSpec, raw: Path | None, out: Path) -> None:
    frame, where = read_table(table, raw)
    if frame.n_rows != table.rows:
        raise SystemExit(f"{where}: {frame.n_rows} rows, the spec says {table.rows}")
    labels, arrays = build_arrays(table, frame, where)
    split = make_split(table, frame, labels)
    every = np.sort(np.concatenate([split[p] for p in SPLIT_FILES]))
    if not np.array_equal(every, np.arange(table.rows)):
        raise SystemExit(f"{table.name}: the split does not cover every row exactly once")
    folder = out / table.name
    for part in SPLIT_FILES:
        write_text(folder / f"{part}.txt", "".join(f"{int(i)}\n" for i in np.sort(split[part])))
    write_text(folder / "labels.txt", "".join(f"{table.class_names[i]}\n" for i in labels))
    text = provenance(table, where, source_sha256(table, raw), labels, split, arrays)
    write_text(folder / "PROVENANCE.md", text)
    sizes = ", ".join(f"{p} {split[p].size}" for p in SPLIT_FILES)
    print(f"{table.name}: {sizes} -> {folder}")


def provenance(
    table: TableSpec,
    where: str,
    sha256: str,
    labels: np.ndarray,
    split: dict[str, np.ndarray],
    arrays: dict[str, np.ndarray],
) -> str:
    rule = table.split
    if rule.kind == "stratified":
        how = f"stratified 60/20/20 of all rows (`stratified_split`, seed {SPLIT_SEED})"
    else:
        how = (
            f"official train/test: {rule.note}. Validation: a stratified {VAL_FRACTION:.0%} of "
            f"the official training rows (`stratified_holdout`, seed {SPLIT_SEED})"
        )
    counts = "\n".join(
        f"| {part} | {split[part].size} | "
        + " | ".join(
            str(int((labels[split[part]] == c).sum())) for c in range(len(table.class_names))
        )
        + " |"
        for part in SPLIT_FILES
    )
    header = " | ".join(table.class_names)
    views = "\n".join(
        f"- `{name}` ({x.shape[1]}): values {float(x.min()):g} to {float(x.max()):g}"
        for name, x in arrays.items()
    )
    return f"""# The shipped split of `{table.name}`: provenance

`train.txt`, `val.txt`, `test.txt`: 0-based row numbers (ascending) of `{table.member}` of the
{table.package} package (object `{table.object_name or "-"}`, {table.rows} rows, file order);
`labels.txt`: the class of each of those rows, which `robustfusion prepare {table.name}` checks.

- **Read from**: `{_shown(where)}` (sha256 of that file `{sha256}`).
- **Licence**: {table.licence}.
- **Split**: {how}.
- **Built by**: `python scripts/build_packaged_splits.py` (rerunning it on the same file gives the
  same bytes).

| split | rows | {header} |
|---|---|{"---|" * len(table.class_names)}
{counts}

Views (raw values, before standardisation):

{views}
"""


def _shown(where: str) -> str:
    """``archive.deb:member`` with the archive's folder left out (it is the builder's)."""
    archive, sep, member = where.partition(":")
    return f"{Path(archive).name}{sep}{member}" if sep else where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--raw",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="where to read dataset NAME (repeatable; default: the installed package)",
    )
    parser.add_argument("--only", help="comma-separated dataset names (default: all)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"default {OUT}")
    args = parser.parse_args()
    raws = {}
    for item in args.raw:
        name, _, path = item.partition("=")
        raws[name] = Path(path).expanduser()
    only = set(args.only.split(",")) if args.only else None
    for table in SPECS:
        if only is None or table.name in only:
            build(table, raws.get(table.name), args.out)


if __name__ == "__main__":
    main()
