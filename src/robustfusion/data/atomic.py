"""Atomic writes for dataset preparation: every output appears complete or not at all.

Each writer writes to a temporary sibling and renames it into place (``os.replace`` is atomic on
one file system), so an interrupted ``prepare`` never leaves a half-written file that a later run
would take for finished work. Directories are built under a temporary name and renamed likewise.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def _temp_sibling(path: Path, suffix: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    return Path(name)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    tmp = _temp_sibling(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_npy(path: Path, array: np.ndarray) -> None:
    """Save ``array`` as ``.npy`` atomically (read it back with ``allow_pickle=False``)."""
    tmp = _temp_sibling(path, ".npy")
    try:
        with open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_image(path: Path, image: Image.Image, **params: Any) -> None:
    """Save a Pillow image atomically; the format follows ``path``'s suffix."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    tmp = _temp_sibling(path, path.suffix)
    try:
        image.save(tmp, format=fmt, **params)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary directory that is renamed to ``path`` when the block succeeds.

    An existing ``path`` is replaced. On an exception the temporary directory is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_temporaries(folder: Path) -> int:
    """Delete leftovers (``.NAME.*.tmp*``) of an interrupted run below ``folder``; count them."""
    count = 0
    if not folder.exists():
        return 0
    for item in folder.rglob(".*.tmp*"):
        if item.is_dir():
            shutil.rmtree(item, ignore_errors=True)
        else:
            item.unlink(missing_ok=True)
        count += 1
    return count
