"""The packaged tables (satellite, dna_splice, spambase, german_credit, hcs_cells, wdbc, letter,
vehicle, pima_diabetes): prepare from fixtures in each package's layout through the CLI, then load by name and as ``--data``."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from _rdata_writer import data_frame, deb_bytes, factor, rda_bytes, real, write

from robustfusion.cli import main
from robustfusion.data import load_dataset
from robustfusion.data.datasets import packaged_tables
from robustfusion.data.datasets.packaged_tables import (
    SPECS,
    TableSpec,
    shipped_labels,
    shipped_split,
)
from robustfusion.data.media import rdata
from robustfusion.errors import DataError
from robustfusion.registry import DATASETS, PREPARERS

NAMES = [table.name for table in SPECS]
#: The per-table facts these tests expect: modality dims and class count.
EXPECTED = {
    "satellite": ({"visible": 18, "infrared": 18}, 6),
    "dna_splice": ({"upstream": 90, "downstream": 90}, 3),
    "spambase": ({"words": 48, "characters": 9}, 2),
    "german_credit": ({"numeric": 7, "categorical": 54}, 2),
    "hcs_cells": ({"body": 28, "stains": 28}, 2),
    "wdbc": ({"mean": 10, "error": 10, "worst": 10}, 2),
    "letter": ({"box": 5, "moments": 7, "edges": 4}, 26),
    "vehicle": ({"heuristic": 11, "moments": 7}, 4),
    "pima_diabetes": ({"examination": 5, "history": 3}, 2),
}
#: Tables whose feature columns the package stores as factors with levels "0" and "1".
FACTOR_FEATURES = {"dna_splice"}
REAL_LIBRARY = Path("/tmp/debs/x/usr/lib/R/site-library")


def _fixture_columns(table: TableSpec, rows: int | None = None) -> dict[str, np.ndarray]:
    """Cheap random feature values for every column; the shipped labels (and Case) as stored."""
    rng = np.random.default_rng(len(table.name))
    n = table.rows if rows is None else rows
    out = {}
    for column in table.columns:
        if table.name in FACTOR_FEATURES:
            out[column] = rng.integers(0, 2, n).astype(np.float64)
        else:
            out[column] = np.round(rng.normal(50.0, 20.0, n), 3)
    return out


def _labels(table: TableSpec, rows: int | None = None) -> list[int]:
    codes = [table.class_names.index(name) for name in shipped_labels(table)]
    return codes[: table.rows if rows is None else rows]


def _rda(table: TableSpec, rows: int | None = None, labels: list[int] | None = None) -> bytes:
    values = _fixture_columns(table, rows)
    n = len(next(iter(values.values())))
    codes = labels if labels is not None else _labels(table, rows)
    items = {}
    test_rows = set(shipped_split(table)["test"].tolist())
    for column, x in values.items():
        if column == table.target:
            items[column] = factor(codes, table.class_names)
        elif table.split.kind == "column" and column == table.split.column:
            case = [0 if i in test_rows else 1 for i in range(n)]
            items[column] = factor(case, [table.split.test_value, table.split.train_value])
        elif table.name in FACTOR_FEATURES:
            items[column] = factor(x.astype(int).tolist(), ["0", "1"])
        else:
            items[column] = real(x)
    return rda_bytes({table.object_name: data_frame(items, n)})


def _csv(table: TableSpec, rows: int | None = None) -> bytes:
    values = _fixture_columns(table, rows)
    codes = _labels(table, rows)
    features = np.stack([values[c] for c in table.columns[:-1]], axis=1)
    lines = [f"{len(codes)},{features.shape[1]},{','.join(table.class_names)}"]
    lines += [
        ",".join(f"{v:g}" for v in row) + f",{c}" for row, c in zip(features, codes, strict=True)
    ]
    return ("\n".join(lines) + "\n").encode()


def _package_folder(table: TableSpec, root: Path, rows: int | None = None) -> Path:
    """``root/<package>/<member>``: an installed package's layout."""
    data = _rda(table, rows) if table.source == "r" else _csv(table, rows)
    write(root / table.package / table.member, data)
    return root / table.package


def _prepare(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["prepare", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _one_line_error(status: int, err: str, needle: str) -> None:
    lines = err.strip().splitlines()
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert needle in lines[0], lines[0]


def _same_tensors(a, b) -> None:  # noqa: ANN001 - DataSplits
    for part in ("train", "val", "test"):
        left, right = getattr(a, part), getattr(b, part)
        assert torch.equal(left.target, right.target)
        for name in a.info.modality_names:
            assert torch.equal(left.arrays[name], right.arrays[name]), (part, name)


# ------------------------------------------------------------------------------ contents
def test_every_table_is_registered_with_its_prepare_step() -> None:
    assert set(NAMES) == set(EXPECTED)
    assert set(NAMES) <= set(DATASETS.names()) and set(NAMES) <= set(PREPARERS.names())
    for table in SPECS:
        assert table.dims() == EXPECTED[table.name][0]
        assert len(table.class_names) == EXPECTED[table.name][1]
        split = shipped_split(table)
        every = np.sort(np.concatenate(list(split.values())))
        assert np.array_equal(every, np.arange(table.rows)), table.name
        assert len(shipped_labels(table)) == table.rows
        taken = [c for cols in table.view_columns().values() for c in cols]
        assert len(taken) == len(set(taken)), f"{table.name}: a column in two modalities"


@pytest.mark.parametrize("name", NAMES)
def test_prepare_then_load_by_name_and_as_npz(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = packaged_tables.spec(name)
    raw = _package_folder(table, tmp_path / "lib")
    out = tmp_path / "prepared"
    status, printed, err = _prepare([name, "--raw", str(raw), "--out", str(out)], capsys)
    assert status == 0, err
    assert printed.strip() == str(out)
    data = load_dataset(name, root=out)
    dims, classes = EXPECTED[name]
    assert {m.name: m.shape for m in data.info.modalities} == {k: (v,) for k, v in dims.items()}
    assert data.info.modality_names == tuple(dims)
    assert data.info.num_classes == classes and data.info.class_names == table.class_names
    split = shipped_split(table)
    assert [len(data.train), len(data.val), len(data.test)] == [split[p].size for p in split]
    assert data.info.extra["licence"] == table.licence
    _same_tensors(data, load_dataset(data=out / f"{name}.npz"))
    # the raw values are the package's columns, in the view's order
    with np.load(out / f"{name}.npz", allow_pickle=False) as archive:
        stored = {k: archive[k] for k in archive.files}
    assert list(stored) == ["y", "split", *dims]
    values = _fixture_columns(table)
    for view, columns in table.view_columns().items():
        assert stored[view].dtype == np.float32
        np.testing.assert_array_equal(stored[view][:, 0], values[columns[0]].astype(np.float32))
        np.testing.assert_array_equal(stored[view][:, -1], values[columns[-1]].astype(np.float32))


def test_a_deb_is_read_as_the_package(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = packaged_tables.spec("spambase")
    path = f"./usr/lib/R/site-library/{table.package}/{table.member}"
    deb = write(tmp_path / "r-cran-kernlab_0.9-32-1_amd64.deb", deb_bytes({path: _rda(table)}))
    out = tmp_path / "out"
    status, _, err = _prepare(["spambase", "--raw", str(deb), "--out", str(out)], capsys)
    assert status == 0, err
    folder = tmp_path / "folder"
    _prepare(
        ["spambase", "--raw", str(_package_folder(table, folder)), "--out", str(folder)], capsys
    )
    _same_tensors(load_dataset("spambase", root=out), load_dataset("spambase", root=folder))


def test_wdbc_from_a_wheel_and_the_bare_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = packaged_tables.spec("wdbc")
    wheel = tmp_path / "scikit_learn-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"sklearn/{table.member}", _csv(table))
    csv = write(tmp_path / "breast_cancer.csv", _csv(table))
    for raw, out in ((wheel, tmp_path / "a"), (csv, tmp_path / "b")):
        status, _, err = _prepare(["wdbc", "--raw", str(raw), "--out", str(out)], capsys)
        assert status == 0, err
    _same_tensors(
        load_dataset("wdbc", root=tmp_path / "a"), load_dataset("wdbc", root=tmp_path / "b")
    )


def test_default_sources_are_searched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    table = packaged_tables.spec("german_credit")
    _package_folder(table, tmp_path / "site")
    monkeypatch.setattr(rdata, "R_LIBRARY_FOLDERS", ())
    monkeypatch.setenv("R_LIBS", "")
    monkeypatch.setenv("R_LIBS_USER", str(tmp_path / "site"))
    monkeypatch.setenv("ROBUSTFUSION_DATA", str(tmp_path / "cache"))
    status, printed, err = _prepare(["german_credit"], capsys)
    assert status == 0, err
    assert Path(printed.strip()) == tmp_path / "cache" / "german_credit"
    assert load_dataset("german_credit").info.name == "german_credit"


# ----------------------------------------------------------------------------- mistakes
def test_a_missing_package_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rdata, "R_LIBRARY_FOLDERS", ())
    for variable in rdata.R_LIBRARY_ENV:
        monkeypatch.delenv(variable, raising=False)
    status, _, err = _prepare(["satellite", "--out", str(tmp_path / "o")], capsys)
    _one_line_error(status, err, "apt-get install r-cran-mlbench")
    (tmp_path / "empty").mkdir()
    status, _, err = _prepare(["satellite", "--raw", str(tmp_path / "empty")], capsys)
    _one_line_error(status, err, "apt-get download r-cran-mlbench")
    monkeypatch.setattr(packaged_tables.importlib.util, "find_spec", lambda name: None)
    status, _, err = _prepare(["wdbc", "--out", str(tmp_path / "o")], capsys)
    _one_line_error(status, err, "pip download scikit-learn --no-deps")
    assert not (tmp_path / "o").exists()


def test_a_wrong_row_count_or_order_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = packaged_tables.spec("satellite")
    short = write(tmp_path / "short" / "mlbench" / table.member, _rda(table, rows=table.rows - 1))
    status, _, err = _prepare(
        ["satellite", "--raw", str(short), "--out", str(tmp_path / "o")], capsys
    )
    _one_line_error(status, err, "has 6434 rows, not the 6435")
    labels = _labels(table)
    other = next(i for i, c in enumerate(labels) if c != labels[0])
    labels[0], labels[other] = labels[other], labels[0]
    swapped = write(tmp_path / "swapped.rda", _rda(table, labels=labels))
    status, _, err = _prepare(
        ["satellite", "--raw", str(swapped), "--out", str(tmp_path / "o")], capsys
    )
    _one_line_error(status, err, "row 0 is")
    assert not (tmp_path / "o").exists()


def test_loading_before_prepare_says_so(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="run `robustfusion prepare hcs_cells` first"):
        load_dataset("hcs_cells", root=tmp_path)


def test_a_file_of_another_table_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = packaged_tables.spec("wdbc")
    _prepare(
        ["wdbc", "--raw", str(_package_folder(table, tmp_path)), "--out", str(tmp_path)], capsys
    )
    (tmp_path / "wdbc.npz").rename(tmp_path / "german_credit.npz")
    with pytest.raises(DataError, match="prepare german_credit` again"):
        load_dataset("german_credit", root=tmp_path)


# ------------------------------------------------------------------------ the real files
@pytest.mark.skipif(not REAL_LIBRARY.is_dir(), reason="the real R packages are not unpacked here")
@pytest.mark.parametrize("name", NAMES)
def test_the_real_files(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = packaged_tables.spec(name)
    args = [name, "--out", str(tmp_path)]
    if table.source == "r":
        args += ["--raw", str(REAL_LIBRARY / table.package)]
    elif importlib.util.find_spec(table.package) is None:
        pytest.skip(f"{table.package} is not installed")
    status, _, err = _prepare(args, capsys)
    assert status == 0, err
    data = load_dataset(name, root=tmp_path)
    assert len(data.train) + len(data.val) + len(data.test) == table.rows
    assert {m.name: m.shape[0] for m in data.info.modalities} == EXPECTED[name][0]
