"""The R data reader (robustfusion.data.media.rdata) against files written by a tiny writer."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from _rdata_writer import (
    compact_intseq,
    compact_realseq,
    data_frame,
    deb_bytes,
    deferred_string,
    factor,
    integer,
    logical,
    rda_bytes,
    real,
    strings,
    wrap_real,
    write,
)

from robustfusion.data.media import rdata
from robustfusion.data.media.rdata import read_data_frame, read_package_file, read_rdata
from robustfusion.errors import DataError

N = 5
COLUMNS = {
    "num": real([1.5, -2.0, float("nan"), 1e300, 0.0]),
    "int": integer([1, None, 3, -4, 2**31 - 1]),
    "fac": factor([0, 1, None, 1, 0], ["low", "high"]),
    "lgl": logical([True, False, None, True, False]),
    "chr": strings(["a", None, "é", "", "long text"]),
}


def _check_frame(frame: rdata.RFrame) -> None:
    assert list(frame.columns) == ["num", "int", "fac", "lgl", "chr"]
    assert frame.n_rows == N
    assert frame.kinds == {
        "num": "double", "int": "integer", "fac": "factor", "lgl": "logical", "chr": "character",
    }  # fmt: skip
    np.testing.assert_array_equal(frame.columns["num"], [1.5, -2.0, np.nan, 1e300, 0.0])
    np.testing.assert_array_equal(frame.columns["int"], [1, np.nan, 3, -4, 2**31 - 1])
    np.testing.assert_array_equal(frame.columns["fac"], [0, 1, -1, 1, 0])
    assert frame.levels == {"fac": ("low", "high")}
    np.testing.assert_array_equal(frame.columns["lgl"], [1, 0, np.nan, 1, 0])
    assert list(frame.columns["chr"]) == ["a", None, "é", "", "long text"]


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("compression", ["gzip", "bzip2", "xz", "none"])
def test_a_data_frame_round_trips(version: int, compression: str) -> None:
    data = rda_bytes({"df": data_frame(COLUMNS, N)}, version, compression)
    _check_frame(read_data_frame(data, "df", "test.rda"))


def test_version_3_altrep_row_names_and_columns() -> None:
    columns = {
        **COLUMNS,
        "seq": compact_realseq(N, 0.5),
        "iseq": compact_intseq(N, 10),
        "wrapped": wrap_real([1.0, 2.0, 3.0, 4.0, 5.0]),
        "deferred": deferred_string([7, 8, 9, 10, 11]),
    }
    frame_item = data_frame(columns, N, row_names=compact_intseq(N))
    frame = read_data_frame(rda_bytes({"df": frame_item}, version=3), "df", "v3.rda")
    np.testing.assert_array_equal(frame.columns["seq"], [0.5, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_array_equal(frame.columns["iseq"], [10, 11, 12, 13, 14])
    np.testing.assert_array_equal(frame.columns["wrapped"], [1, 2, 3, 4, 5])
    assert list(frame.columns["deferred"]) == ["7", "8", "9", "10", "11"]
    assert frame.n_rows == N


def test_several_bindings_and_symbol_back_references() -> None:
    # the second frame's attribute names are REFSXPs to the symbols of the first
    data = rda_bytes({"a": data_frame(COLUMNS, N), "b": data_frame({"x": real([1.0])}, 1)})
    bindings = read_rdata(data, "two.rda")
    assert list(bindings) == ["a", "b"]
    assert read_data_frame(data, "b", "two.rda").columns["x"].tolist() == [1.0]
    with pytest.raises(DataError, match="holds no object 'c'"):
        read_data_frame(data, "c", "two.rda")


def test_unknown_type_names_its_code() -> None:
    def complex_column(w) -> None:  # CPLXSXP (15)
        w.int(15)
        w.int(1)
        w.buf += b"\0" * 16

    data = rda_bytes({"df": data_frame({"z": complex_column}, 1)})
    with pytest.raises(DataError, match=r"type 15 \(CPLXSXP\)"):
        read_data_frame(data, "df", "c.rda")


def test_truncated_and_foreign_files_are_refused() -> None:
    whole = rda_bytes({"df": data_frame(COLUMNS, N)}, compression="none")
    with pytest.raises(DataError, match="ends early"):
        read_rdata(whole[:-20], "cut.rda")
    packed = rda_bytes({"df": data_frame(COLUMNS, N)})
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_rdata(packed[: len(packed) // 2], "cut.rda.gz")
    with pytest.raises(DataError, match="not an R data file"):
        read_rdata(b"hello, world\n", "text.rda")
    with pytest.raises(DataError, match="ASCII"):
        read_rdata(gzip.compress(b"RDX2\nA\n2\n"), "ascii.rda")
    not_frame = rda_bytes({"v": real([1.0, 2.0])})
    with pytest.raises(DataError, match="not a data.frame"):
        read_data_frame(not_frame, "v", "vector.rda")


# --------------------------------------------------------------------------- locating files
def _rda() -> bytes:
    return rda_bytes({"df": data_frame(COLUMNS, N)})


def test_package_file_from_file_folder_library_and_deb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob = _rda()
    rda = write(tmp_path / "lib" / "pkg" / "data" / "df.rda", blob)
    assert read_package_file("pkg", "data/df.rda", rda, "hint")[0] == blob
    assert read_package_file("pkg", "data/df.rda", rda.parents[1], "hint")[0] == blob
    assert read_package_file("pkg", "data/df.rda", tmp_path / "lib", "hint")[0] == blob
    deb = write(
        tmp_path / "r-cran-pkg.deb", deb_bytes({"./usr/lib/R/site-library/pkg/data/df.rda": blob})
    )
    data, where = read_package_file("pkg", "data/df.rda", deb, "hint")
    assert data == blob and where.endswith("pkg/data/df.rda")
    monkeypatch.setattr(rdata, "R_LIBRARY_FOLDERS", ())
    monkeypatch.setenv("R_LIBS", f"{tmp_path / 'nothing'}:{tmp_path / 'lib'}")
    assert read_package_file("pkg", "data/df.rda", None, "hint")[0] == blob
    monkeypatch.setenv("R_LIBS", str(tmp_path / "nothing"))
    with pytest.raises(DataError, match="R package pkg is not installed.*: install it"):
        read_package_file("pkg", "data/df.rda", None, "install it")


def test_deb_errors(tmp_path: Path) -> None:
    blob = _rda()
    zst = write(
        tmp_path / "z.deb", deb_bytes({"x": b"\x28\xb5\x2f\xfd" + b"0" * 64}, "data.tar.zst")
    )
    with pytest.raises(DataError, match="zst|damaged"):
        read_package_file("pkg", "data/df.rda", zst, "hint")
    other = write(tmp_path / "o.deb", deb_bytes({"./usr/lib/R/site-library/q/data/df.rda": blob}))
    with pytest.raises(DataError, match="holds no file .*pkg/data/df.rda"):
        read_package_file("pkg", "data/df.rda", other, "hint")
    whole = deb_bytes({"./usr/lib/R/site-library/pkg/data/df.rda": blob})
    cut = write(tmp_path / "cut.deb", whole[: len(whole) - 40])
    with pytest.raises(DataError, match="truncated|damaged"):
        read_package_file("pkg", "data/df.rda", cut, "hint")
    with pytest.raises(DataError, match="does not exist: hint"):
        read_package_file("pkg", "data/df.rda", tmp_path / "missing.deb", "hint")
    with pytest.raises(DataError, match="holds no data/df.rda of R package pkg: hint"):
        read_package_file("pkg", "data/df.rda", tmp_path, "hint")
