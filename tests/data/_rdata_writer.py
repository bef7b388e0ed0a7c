"""A tiny writer of R's XDR serialization (what ``save()`` writes to ``.rda``), for tests only.

It writes data frames of double, integer, logical, factor and character columns, in format
version 2 or 3, gzip/bzip2/xz-compressed or plain, optionally with ALTREP compact row names.
Also: a minimal Debian package (``ar`` + ``data.tar.*``) holding files.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import tarfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

NA_INTEGER = -(2**31)
Item = Callable[["Writer"], None]


class Writer:
    """Appends R items to a byte buffer (XDR: big-endian), with a symbol reference table."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.symbols: dict[str, int] = {}

    def int(self, value: int) -> None:
        self.buf += struct.pack(">i", value)

    @staticmethod
    def flags(
        code: int, obj: bool = False, attr: bool = False, tag: bool = False, levels: int = 0
    ) -> int:
        return code | obj << 8 | attr << 9 | tag << 10 | levels << 12

    def symbol(self, name: str) -> None:
        if name in self.symbols:
            self.int(255 | self.symbols[name] << 8)  # REFSXP with the index packed in
            return
        self.int(1)
        self.charsxp(name)
        self.symbols[name] = len(self.symbols) + 1

    def charsxp(self, text: str | None) -> None:
        if text is None:
            self.int(9)
            self.int(-1)
            return
        raw = text.encode("utf-8")
        ascii_ = all(b < 128 for b in raw)
        self.int(self.flags(9, levels=64 if ascii_ else 8))
        self.int(len(raw))
        self.buf += raw

    def attributes(self, attrs: Sequence[tuple[str, Item]]) -> None:
        self.pairlist(attrs)

    def pairlist(self, cells: Sequence[tuple[str, Item]]) -> None:
        for tag, item in cells:
            self.int(self.flags(2, tag=True))
            self.symbol(tag)
            item(self)
        self.int(254)

    def _vector(self, code: int, n: int, attrs: Sequence[tuple[str, Item]], obj: bool) -> None:
        self.int(self.flags(code, obj=obj, attr=bool(attrs)))
        self.int(n)

    def real(self, values: Sequence[float], attrs: Sequence[tuple[str, Item]] = ()) -> None:
        data = np.asarray(values, dtype=">f8")
        self._vector(14, data.size, attrs, False)
        self.buf += data.tobytes()
        if attrs:
            self.attributes(attrs)

    def integer(
        self, values: Sequence[int], attrs: Sequence[tuple[str, Item]] = (), code: int = 13
    ) -> None:
        data = np.asarray(values, dtype=">i4")
        self._vector(code, data.size, attrs, any(name == "class" for name, _ in attrs))
        self.buf += data.tobytes()
        if attrs:
            self.attributes(attrs)

    def strings(self, values: Sequence[str | None], attrs: Sequence[tuple[str, Item]] = ()) -> None:
        self._vector(16, len(values), attrs, False)
        for text in values:
            self.charsxp(text)
        if attrs:
            self.attributes(attrs)

    def list(self, items: Sequence[Item], attrs: Sequence[tuple[str, Item]] = ()) -> None:
        self._vector(19, len(items), attrs, any(name == "class" for name, _ in attrs))
        for item in items:
            item(self)
        if attrs:
            self.attributes(attrs)

    def altrep(self, kind: str, state: Item, attrs: Sequence[tuple[str, Item]] = ()) -> None:
        """An ALTREP object: info (class, package, type), state, attributes (or NULL)."""
        self.int(238)
        self.int(self.flags(2))
        self.symbol(kind)
        self.int(self.flags(2))
        self.symbol("base")
        self.int(self.flags(2))
        self.integer([13])
        self.int(254)
        state(self)
        if attrs:
            self.attributes(attrs)
        else:
            self.int(254)


# ------------------------------------------------------------------------ column helpers
def real(values: Sequence[float]) -> Item:
    return lambda w: w.real(values)


def integer(values: Sequence[int | None]) -> Item:
    return lambda w: w.integer([NA_INTEGER if v is None else v for v in values])


def logical(values: Sequence[bool | None]) -> Item:
    return lambda w: w.integer([NA_INTEGER if v is None else int(v) for v in values], code=10)


def strings(values: Sequence[str | None]) -> Item:
    return lambda w: w.strings(values)


def factor(codes: Sequence[int | None], levels: Sequence[str]) -> Item:
    """A factor from 0-based codes (None = NA)."""
    ones = [NA_INTEGER if c is None else int(c) + 1 for c in codes]
    return lambda w: w.integer(
        ones, [("levels", strings(list(levels))), ("class", strings(["factor"]))]
    )


def compact_intseq(n: int, start: int = 1) -> Item:
    return lambda w: w.altrep("compact_intseq", real([n, start, 1]))


def compact_realseq(n: int, start: float = 1.0) -> Item:
    return lambda w: w.altrep("compact_realseq", real([n, start, 1]))


def wrap_real(values: Sequence[float]) -> Item:
    def state(w: Writer) -> None:  # CONS(wrapped vector, metadata): a dotted pair
        w.int(w.flags(2))
        w.real(values)
        w.integer([0, 0])

    return lambda w: w.altrep("wrap_real", state)


def deferred_string(values: Sequence[int]) -> Item:
    def state(w: Writer) -> None:  # CONS(the numbers, scipen): a dotted pair
        w.int(w.flags(2))
        w.integer(values)
        w.integer([0])

    return lambda w: w.altrep("deferred_string", state)


def data_frame(columns: Mapping[str, Item], n: int, row_names: Item | None = None) -> Item:
    """A ``data.frame`` (row names: compact ``c(NA, -n)`` unless given)."""
    names = list(columns)
    rows = row_names or integer([None, -n])
    return lambda w: w.list(
        list(columns.values()),
        [("names", strings(names)), ("class", strings(["data.frame"])), ("row.names", rows)],
    )


def rda_bytes(bindings: Mapping[str, Item], version: int = 2, compression: str = "gzip") -> bytes:
    """An ``.rda`` file's bytes holding ``bindings`` (name -> item)."""
    w = Writer()
    w.buf += f"RDX{version}\nX\n".encode()
    w.int(version)
    w.int(0x040201)  # written by R 4.2.1
    w.int(0x020300 if version == 2 else 0x030500)
    if version == 3:
        w.int(5)
        w.buf += b"UTF-8"
    w.pairlist(list(bindings.items()))
    raw = bytes(w.buf)
    return {
        "gzip": lambda b: gzip.compress(b, compresslevel=1, mtime=0),
        "bzip2": lambda b: bz2.compress(b, compresslevel=1),
        "xz": lambda b: lzma.compress(b, preset=0),
        "none": lambda b: b,
    }[compression](raw)


# ----------------------------------------------------------------------------- .deb
def deb_bytes(files: Mapping[str, bytes], data_member: str = "data.tar.xz") -> bytes:
    """A minimal Debian package: ``debian-binary``, ``control.tar.xz`` and ``data_member``
    (a tar of ``files``, keyed by ``./usr/...`` paths)."""

    def tar(entries: Mapping[str, bytes], mode: str) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode=mode) as archive:
            for name, data in entries.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return out.getvalue()

    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", tar({"./control": b"Package: test\n"}, "w:xz")),
    ]
    if data_member.endswith(".xz"):
        members.append((data_member, tar(files, "w:xz")))
    elif data_member.endswith(".gz"):
        members.append((data_member, tar(files, "w:gz")))
    else:  # anything else: the given bytes are the member itself
        members.append((data_member, b"".join(files.values())))
    blob = bytearray(b"!<arch>\n")
    for name, data in members:
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n"
        blob += header.encode("ascii") + data + (b"\n" if len(data) % 2 else b"")
    return bytes(blob)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
