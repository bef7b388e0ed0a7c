"""Atomic writes: every output appears complete or not at all.

Each writer writes to a temporary sibling (``.NAME.<random>.tmp<suffix>``) and renames it into
place (``os.replace`` is atomic on one file system), so a killed run never leaves a half-written
file that a later run would take for finished work. Files get the usual permissions
(``0666 & ~umask``), not ``mkstemp``'s private ``0600``: runs, caches and reports are shared.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


def _default_mode(base: int = 0o666) -> int:
    """``base`` less the process umask: the mode ``open`` would give (``0o777`` for folders)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


@contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it is renamed onto ``path``.

    On an exception the temporary is removed and an existing ``path`` is left as it was.
    ``suffix`` keeps the extension for writers that choose the format by it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON (byte-identical for equal data), atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_npy(path: Path, array: np.ndarray) -> None:
    """Save ``array`` as ``.npy`` atomically (read it back with ``allow_pickle=False``)."""
    with atomic_path(path, ".npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)


def save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Save ``arrays`` as a compressed ``.npz`` atomically (no object arrays: loadable without pickle)."""
    with atomic_path(path, ".npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def save_state_dict(path: Path, state: Mapping[str, Any]) -> None:
    """``torch.save`` a plain state dict atomically (loadable with ``weights_only=True``).

    Serialised in memory first: saving to the temporary path would embed its random name in the
    archive, and equal weights would not give byte-identical files.
    """
    import torch

    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    write_bytes(path, buffer.getvalue())


def save_image(path: Path, image: Any, **params: Any) -> None:
    """Save a Pillow image atomically; the format follows ``path``'s suffix."""
    from PIL import Image

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    with atomic_path(path, path.suffix) as tmp:
        image.save(tmp, format=fmt, **params)


def save_figure(figure: Any, path: Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure to ``path`` atomically (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_path(path, path.suffix) as tmp:
            figure.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi)
    finally:
        plt.close(figure)
    return path


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary directory that is renamed to ``path`` when the block succeeds.

    An existing ``path`` is replaced. On an exception the temporary directory is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, _default_mode(0o777))  # mkdtemp creates 0700
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
