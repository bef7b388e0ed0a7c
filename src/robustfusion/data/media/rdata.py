"""Read R data files (``.rda``/``.RData``) without R: enough for data frames of plain columns.

``save()`` writes ``RDX2\\n`` or ``RDX3\\n``, then R's serialization in XDR (``X\\n``: big-endian),
usually compressed (gzip, bzip2 or xz). The object is a pairlist of ``(name, value)`` bindings.
Supported: ``NULL``, pairlists with attributes and tags, symbols and back-references to them,
lists, double, integer, logical and character vectors (``NA`` included; long vectors), ALTREP
compact sequences (``compact_intseq``, ``compact_realseq``: row names in format 3), wrappers
(``wrap_*``) and deferred strings. Anything else (environments, closures, S4, bytecode, ASCII or
native binary formats) raises :class:`~robustfusion.errors.DataError` naming it.

:func:`data_frame` turns a ``data.frame`` into :class:`RFrame`: double, integer and logical
columns as float64 (``NA`` -> NaN), factors as 0-based int64 codes (``NA`` -> -1) with their
levels, character columns as object arrays of ``str`` (``NA`` -> ``None``).

Where the file comes from (:func:`read_package_file`): a ``.rda`` file, an installed R package
folder, a Debian ``.deb`` (an ``ar`` archive holding ``data.tar.*``) or the standard R library
folders.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import struct
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robustfusion.errors import DataError

# SEXP type codes (R's Rinternals.h and serialize.c)
NILSXP = 0
SYMSXP = 1
LISTSXP = 2
LGLSXP = 10
INTSXP = 13
REALSXP = 14
CHARSXP = 9
STRSXP = 16
VECSXP = 19
ALTREP_SXP = 238
NILVALUE_SXP = 254
REFSXP = 255

TYPE_NAMES = {
    0: "NILSXP", 1: "SYMSXP", 2: "LISTSXP", 3: "CLOSXP", 4: "ENVSXP", 5: "PROMSXP",
    6: "LANGSXP", 7: "SPECIALSXP", 8: "BUILTINSXP", 9: "CHARSXP", 10: "LGLSXP", 13: "INTSXP",
    14: "REALSXP", 15: "CPLXSXP", 16: "STRSXP", 17: "DOTSXP", 19: "VECSXP", 20: "EXPRSXP",
    21: "BCODESXP", 22: "EXTPTRSXP", 23: "WEAKREFSXP", 24: "RAWSXP", 25: "S4SXP",
    238: "ALTREP_SXP", 239: "ATTRLISTSXP", 240: "ATTRLANGSXP", 241: "BASEENV_SXP",
    242: "EMPTYENV_SXP", 243: "BCREPREF", 244: "BCREPDEF", 245: "GENERICREFSXP",
    246: "CLASSREFSXP", 247: "PERSISTSXP", 248: "PACKAGESXP", 249: "NAMESPACESXP",
    250: "BASENAMESPACE_SXP", 251: "MISSINGARG_SXP", 252: "UNBOUNDVALUE_SXP",
    253: "GLOBALENV_SXP", 254: "NILVALUE_SXP", 255: "REFSXP",
}  # fmt: skip

NA_INTEGER = -(2**31)
_IS_OBJECT, _HAS_ATTR, _HAS_TAG = 1 << 8, 1 << 9, 1 << 10
_LATIN1, _UTF8, _ASCII = 1 << 2, 1 << 3, 1 << 6

#: Environment variables naming R library folders (``:``-separated), searched first.
R_LIBRARY_ENV = ("R_LIBS", "R_LIBS_USER", "R_LIBS_SITE")
#: Debian's R library folders, searched after the environment's.
R_LIBRARY_FOLDERS = (
    Path("/usr/local/lib/R/site-library"),
    Path("/usr/lib/R/site-library"),
    Path("/usr/lib/R/library"),
)


@dataclass(frozen=True)
class RObject:
    """One deserialised R value.

    ``value``: ``None`` (NULL), ``str`` (symbol), ``str | None`` (CHARSXP; None = NA), a numpy
    array (double, integer, logical: NA_integer kept as -2**31), a list of ``str | None``
    (character), a list of :class:`RObject` (list) or of ``(tag, RObject)`` (pairlist).
    """

    type: int
    value: Any
    attributes: dict[str, RObject] = field(default_factory=dict)

    def attribute_strings(self, name: str) -> list[str | None]:
        """The character attribute ``name`` (``[]`` when absent or not character)."""
        attr = self.attributes.get(name)
        return list(attr.value) if attr is not None and attr.type == STRSXP else []


@dataclass(frozen=True)
class RFrame:
    """An R ``data.frame``: columns in file order, and the levels of the factor columns."""

    columns: dict[str, np.ndarray]
    #: factor column -> its levels (the column holds 0-based codes, -1 = NA)
    levels: dict[str, tuple[str, ...]]
    #: column -> ``double``, ``integer``, ``logical``, ``factor`` or ``character``
    kinds: dict[str, str]
    n_rows: int


# ---------------------------------------------------------------------------- decoding
def decompress(data: bytes, source: str) -> bytes:
    """The serialization inside a gzip, bzip2 or xz file (or ``data`` itself when plain)."""
    try:
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data)
        if data[:3] == b"BZh":
            return bz2.decompress(data)
        if data[:6] == b"\xfd7zXZ\x00":
            return lzma.decompress(data)
    except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError) as err:
        raise DataError(f"{source} is truncated or corrupt ({err}): fetch the file again") from None
    if data[:2] == b"\x28\xb5":
        raise DataError(f"{source} is zstd-compressed, which is not supported: resave it with gzip")
    return data


class _Reader:
    """A cursor over XDR bytes with R's reference table."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.pos = 0
        self.source = source
        self.refs: list[RObject] = []
        self.encoding = "utf-8"

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise DataError(
                f"{self.source} ends early (truncated at byte {len(self.data)}): fetch the file again"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def read_int(self) -> int:
        return struct.unpack(">i", self._take(4))[0]

    def length(self) -> int:
        n = self.read_int()
        if n == -1:
            upper, lower = self.read_int(), self.read_int()
            n = (upper << 32) + (lower & 0xFFFFFFFF)
        if n < 0:
            raise DataError(f"{self.source}: a vector has negative length {n}: the file is corrupt")
        return n

    def array(self, dtype: str, n: int) -> np.ndarray:
        width = np.dtype(dtype).itemsize
        return np.frombuffer(self._take(width * n), dtype=dtype).astype(dtype[1:])

    def unsupported(self, code: int, where: str = "") -> DataError:
        name = TYPE_NAMES.get(code, "unknown")
        return DataError(
            f"{self.source}: R object type {code} ({name}){where} is not supported: only data "
            "frames of numeric, integer, logical, factor and character columns can be read"
        )

    # ------------------------------------------------------------------------ items
    def item(self, flags: int | None = None) -> RObject:
        """The next item (``flags``: its flags word, when the caller has read it already)."""
        if flags is None:
            flags = self.read_int()
        code = flags & 0xFF
        if code == NILVALUE_SXP:
            return RObject(NILSXP, None)
        if code == REFSXP:
            index = flags >> 8 or self.read_int()
            if not 1 <= index <= len(self.refs):
                raise DataError(f"{self.source}: reference {index} to nothing: the file is corrupt")
            return self.refs[index - 1]
        if code == SYMSXP:
            name = self.item()
            if name.type != CHARSXP:
                raise DataError(f"{self.source}: a symbol without a name: the file is corrupt")
            symbol = RObject(SYMSXP, name.value or "")
            self.refs.append(symbol)
            return symbol
        if code == LISTSXP:
            return self._pairlist(flags)
        if code == CHARSXP:
            return RObject(CHARSXP, self._charsxp(flags))
        if code == ALTREP_SXP:
            return self._altrep()
        if code in (LGLSXP, INTSXP):
            value: Any = self.array(">i4", self.length())
        elif code == REALSXP:
            value = self.array(">f8", self.length())
        elif code == STRSXP:
            value = [self._string() for _ in range(self.length())]
        elif code == VECSXP:
            value = [self.item() for _ in range(self.length())]
        else:
            raise self.unsupported(code)
        attributes = self._attributes() if flags & _HAS_ATTR else {}
        return RObject(code, value, attributes)

    def _pairlist(self, flags: int) -> RObject:
        """A pairlist, read iteratively along its CDRs (long lists need no deep recursion); a
        dotted pair's last CDR becomes a last, untagged cell."""
        cells: list[tuple[str | None, RObject]] = []
        attributes: dict[str, RObject] = {}
        first = True
        while True:
            attrs = self._attributes() if flags & _HAS_ATTR else {}
            if first:
                attributes, first = attrs, False
            tag = None
            if flags & _HAS_TAG:
                symbol = self.item()
                if symbol.type != SYMSXP:
                    raise DataError(f"{self.source}: a pairlist tag is no symbol: file corrupt")
                tag = symbol.value
            cells.append((tag, self.item()))
            flags = self.read_int()
            code = flags & 0xFF
            if code == NILVALUE_SXP:
                return RObject(LISTSXP, cells, attributes)
            if code != LISTSXP:  # a dotted pair (ALTREP states are CONS(x, metadata))
                cells.append((None, self.item(flags)))
                return RObject(LISTSXP, cells, attributes)

    def _attributes(self) -> dict[str, RObject]:
        attrs = self.item()
        if attrs.type != LISTSXP:
            raise DataError(f"{self.source}: attributes are no pairlist: the file is corrupt")
        return {tag or "": value for tag, value in attrs.value}

    def _charsxp(self, flags: int) -> str | None:
        n = self.read_int()
        if n == -1:
            return None
        raw = self._take(n)
        if flags >> 12 & _LATIN1:
            return raw.decode("latin-1")
        encoding = "utf-8" if flags >> 12 & (_UTF8 | _ASCII) else self.encoding
        try:
            return raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            return raw.decode("latin-1")

    def _string(self) -> str | None:
        flags = self.read_int()
        if flags & 0xFF != CHARSXP:
            raise self.unsupported(flags & 0xFF, " inside a character vector")
        return self._charsxp(flags)

    def _altrep(self) -> RObject:
        info = self.item()
        state = self.item()
        attrs = self.item()
        kind = info.value[0][1].value if info.type == LISTSXP and info.value else ""
        kind = kind if isinstance(kind, str) else ""
        attributes = (
            {tag or "": value for tag, value in attrs.value} if attrs.type == LISTSXP else {}
        )
        if kind in ("compact_intseq", "compact_realseq"):
            if state.type not in (REALSXP, INTSXP) or len(state.value) != 3:
                raise DataError(f"{self.source}: a malformed {kind}: the file is corrupt")
            n, start, step = (float(v) for v in state.value)
            if not 0 <= n <= max(10**7, 64 * len(self.data)):  # no file this small holds more
                raise DataError(f"{self.source}: a {kind} of {n:g} values: the file is corrupt")
            seq = start + step * np.arange(int(n), dtype=np.float64)
            if kind == "compact_intseq":
                return RObject(INTSXP, seq.astype(np.int32), attributes)
            return RObject(REALSXP, seq, attributes)
        if kind.startswith("wrap_") and state.type == LISTSXP and state.value:
            inner = state.value[0][1]
            return RObject(inner.type, inner.value, {**inner.attributes, **attributes})
        if kind == "deferred_string" and state.type == LISTSXP and state.value:
            return RObject(STRSXP, _as_character(state.value[0][1]), attributes)
        raise DataError(
            f"{self.source}: ALTREP class {kind or '(unnamed)'!r} is not supported: only "
            "compact sequences, wrappers and deferred strings can be read"
        )


def _as_character(vector: RObject) -> list[str | None]:
    """R's ``as.character`` of an integer or double vector (for deferred strings)."""
    if vector.type == INTSXP:
        return [None if v == NA_INTEGER else str(int(v)) for v in vector.value]
    if vector.type == REALSXP:
        return [None if np.isnan(v) else f"{v:.15g}" for v in vector.value]
    raise DataError(f"deferred string of R type {vector.type} is not supported")


def read_rdata(data: bytes, source: str) -> dict[str, RObject]:
    """The ``name -> object`` bindings of an ``.rda``/``.RData`` file's bytes (compressed or not)."""
    raw = decompress(data, source)
    if raw[:5] not in (b"RDX2\n", b"RDX3\n"):
        raise DataError(
            f"{source} is not an R data file (no RDX2/RDX3 header): pass the package's .rda file"
        )
    reader = _Reader(raw, source)
    reader.pos = 5
    fmt = reader._take(2)
    if fmt != b"X\n":
        kind = {b"A\n": "ASCII", b"B\n": "native binary"}.get(fmt, repr(fmt))
        raise DataError(
            f"{source} uses R's {kind} format; only XDR ('X') is supported: resave it with save()"
        )
    version = reader.read_int()
    reader.read_int()  # R version that wrote it
    reader.read_int()  # R version needed to read it
    if version == 3:
        reader.encoding = reader._take(reader.read_int()).decode("ascii", "replace").lower()
        if reader.encoding in ("", "native.enc"):
            reader.encoding = "utf-8"
    elif version != 2:
        raise DataError(f"{source}: R serialization version {version} is not supported (2 or 3)")
    try:
        top = reader.item()
    except RecursionError:
        raise DataError(f"{source} nests objects too deeply: it is not a plain data file") from None
    if top.type != LISTSXP:
        raise DataError(f"{source} holds no pairlist of bindings: it is not an .rda file")
    return {tag or "": value for tag, value in top.value}


# ------------------------------------------------------------------------- data frames
def data_frame(obj: RObject, what: str) -> RFrame:
    """Convert a deserialised ``data.frame`` (``what`` names it in errors) to :class:`RFrame`."""
    if obj.type != VECSXP or "data.frame" not in obj.attribute_strings("class"):
        raise DataError(f"{what} is not a data.frame (R type {obj.type}): check the object name")
    names = obj.attribute_strings("names")
    if len(names) != len(obj.value):
        raise DataError(f"{what}: {len(obj.value)} columns but {len(names)} names")
    n_rows = _row_count(obj, what)
    columns: dict[str, np.ndarray] = {}
    levels: dict[str, tuple[str, ...]] = {}
    kinds: dict[str, str] = {}
    for name, column in zip(names, obj.value, strict=True):
        label = name or ""
        values, kind = _column(column, f"{what} column {label!r}")
        if kind == "factor":
            levels[label] = tuple(str(v) for v in column.attribute_strings("levels"))
        if len(values) != n_rows:
            raise DataError(f"{what} column {label!r} has {len(values)} rows, not {n_rows}")
        columns[label], kinds[label] = values, kind
    return RFrame(columns, levels, kinds, n_rows)


def _row_count(obj: RObject, what: str) -> int:
    rows = obj.attributes.get("row.names")
    if rows is None or rows.type == NILSXP:
        return len(obj.value[0].value) if obj.value else 0
    values = rows.value
    # compact row names: c(NA_integer_, -n) (automatic) or c(NA_integer_, n)
    if rows.type == INTSXP and len(values) == 2 and values[0] == NA_INTEGER:
        return abs(int(values[1]))
    return len(values)


def _column(column: RObject, what: str) -> tuple[np.ndarray, str]:
    if column.type == INTSXP and "factor" in column.attribute_strings("class"):
        codes = column.value.astype(np.int64)
        count = len(column.attribute_strings("levels"))
        codes = np.where(codes == NA_INTEGER, 0, codes) - 1
        if codes.size and codes.max() >= count:
            raise DataError(f"{what}: a factor code exceeds its {count} levels: file corrupt")
        return codes, "factor"
    if column.type in (INTSXP, LGLSXP):
        values = column.value.astype(np.float64)
        values[column.value == NA_INTEGER] = np.nan
        return values, "integer" if column.type == INTSXP else "logical"
    if column.type == REALSXP:
        return np.asarray(column.value, dtype=np.float64), "double"
    if column.type == STRSXP:
        strings = np.empty(len(column.value), dtype=object)
        strings[:] = column.value
        return strings, "character"
    raise DataError(
        f"{what} has R type {column.type} ({TYPE_NAMES.get(column.type, 'unknown')}): only "
        "numeric, integer, logical, factor and character columns are supported"
    )


def read_data_frame(data: bytes, name: str, source: str) -> RFrame:
    """The data frame bound to ``name`` in an ``.rda`` file's bytes."""
    bindings = read_rdata(data, source)
    if name not in bindings:
        held = ", ".join(bindings) or "nothing"
        raise DataError(f"{source} holds no object {name!r} (it holds {held}): pass the right file")
    return data_frame(bindings[name], f"{source}: {name}")


# ----------------------------------------------------------------- finding the file
def r_library_folders() -> list[Path]:
    """The R library folders searched without ``--raw``: the environment's, then Debian's."""
    folders: list[Path] = []
    for variable in R_LIBRARY_ENV:
        folders += [Path(p).expanduser() for p in os.environ.get(variable, "").split(":") if p]
    return [*folders, *R_LIBRARY_FOLDERS]


def read_ar_member(path: Path, prefix: str) -> tuple[str, bytes]:
    """The first member of the ``ar`` archive ``path`` whose name starts with ``prefix``."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path} ({err.strerror}): check the path") from None
    if data[:8] != b"!<arch>\n":
        raise DataError(f"{path} is not a Debian package (no ar header): pass the .deb file")
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        if header[58:60] != b"`\n":
            raise DataError(f"{path}: damaged ar member header at byte {pos}: fetch it again")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise DataError(f"{path}: damaged ar member size at byte {pos}") from None
        body = data[pos + 60 : pos + 60 + size]
        if len(body) < size:
            raise DataError(f"{path} is truncated (member {name}): fetch it again")
        if name.startswith(prefix):
            return name, body
        pos += 60 + size + size % 2
    raise DataError(f"{path} holds no {prefix}* member: it is not a Debian binary package")


def read_deb_file(deb: Path, suffix: str) -> tuple[bytes, str]:
    """The file of Debian package ``deb`` whose path ends with ``suffix`` (and where it was)."""
    name, blob = read_ar_member(deb, "data.tar")
    compression = name.rpartition(".tar")[2].lstrip(".")
    mode = {"": "r:", "gz": "r:gz", "bz2": "r:bz2", "xz": "r:xz", "zst": "r:zst"}.get(compression)
    if mode is None:
        raise DataError(f"{deb}: {name} has an unknown compression: unpack it with dpkg-deb -x")
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode=mode) as archive:
            for member in archive:
                if member.isfile() and ("/" + member.name.lstrip("./")).endswith("/" + suffix):
                    handle = archive.extractfile(member)
                    assert handle is not None
                    return handle.read(), f"{deb}:{member.name}"
    except tarfile.CompressionError:
        raise DataError(
            f"{deb}: {name} is {compression}-compressed, which this Python cannot read (zstd needs "
            "Python 3.14): unpack it with `dpkg-deb -x FILE.deb DIR` and pass the package folder"
        ) from None
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zlib.error) as err:
        raise DataError(f"{deb}: {name} is damaged ({err}): fetch the package again") from None
    raise DataError(f"{deb} holds no file .../{suffix}: pass the package that ships it")


def read_package_file(
    package: str, member: str, raw: Path | None, missing_hint: str
) -> tuple[bytes, str]:
    """The bytes of ``<package>/<member>`` of an R package (e.g. ``mlbench``, ``data/DNA.rda``)
    and a description of where they were read.

    ``raw``: the file itself, the installed package folder (or a library folder holding it) or a
    ``.deb``; ``None`` searches :func:`r_library_folders`. ``missing_hint`` ends the error raised
    when nothing is found.
    """
    if raw is not None:
        raw = Path(raw).expanduser()
        if raw.is_dir():
            for candidate in (raw / member, raw / package / member):
                if candidate.is_file():
                    return candidate.read_bytes(), str(candidate)
            if (raw / "data" / "Rdata.rdb").is_file():
                raise DataError(
                    f"{raw} keeps its data in a lazy-load database (data/Rdata.rdb), which is not "
                    f"supported: pass the Debian package's folder or .deb instead"
                )
            raise DataError(f"{raw} holds no {member} of R package {package}: {missing_hint}")
        if not raw.is_file():
            raise DataError(f"{raw} does not exist: {missing_hint}")
        with raw.open("rb") as handle:
            head = handle.read(8)
        if head == b"!<arch>\n":
            return read_deb_file(raw, f"{package}/{member}")
        return raw.read_bytes(), str(raw)
    for folder in r_library_folders():
        candidate = folder / package / member
        if candidate.is_file():
            return candidate.read_bytes(), str(candidate)
    searched = ", ".join(str(f) for f in r_library_folders())
    raise DataError(f"R package {package} is not installed (searched {searched}): {missing_hint}")
