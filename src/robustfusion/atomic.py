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
import re
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

    An existing ``path`` is replaced (:func:`replace_directory`: never half-deleted). On an
    exception the temporary directory is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        replace_directory(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def replace_directory(new: Path, target: Path) -> None:
    """Move the folder ``new`` to ``target``, replacing what ``target`` holds.

    ``new`` must be a sibling of ``target`` (same file system, so that renames are atomic). The
    old ``target`` is first renamed aside (``.NAME.rf-old-XXXXXXXX``), then ``new`` is renamed
    in, then the old one is deleted: a failure before the second rename puts the old folder back,
    and at no moment is ``target`` a mixture of the two. A process killed between the two renames
    leaves the old folder aside; :func:`recover_replaced_directory` puts it back.
    """
    new, target = Path(new), Path(target)
    os.chmod(new, _default_mode(0o777))  # mkdtemp creates 0700
    if not target.exists():
        os.replace(new, target)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.rf-old-", dir=target.parent))
    os.replace(target, aside / "run")  # a rename: the folder keeps its inode, nothing is copied
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(aside / "run", target)
        aside.rmdir()
        raise
    shutil.rmtree(aside, ignore_errors=True)


def sibling_directory(target: Path, tag: str = "new") -> Path:
    """A new empty hidden folder ``.NAME.rf-<tag>-XXXXXXXX`` beside ``target`` (for
    :func:`replace_directory`)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.rf-{tag}-", dir=target.parent))


def recover_replaced_directory(target: Path) -> list[str]:
    """Clean up after a process killed during :func:`replace_directory` or while building a
    replacement; returns what was done, one line each.

    Call it only while holding ``target``'s lock (so that no live process owns the leftovers).
    An old folder set aside is put back when ``target`` is missing (the replacement never
    arrived) and deleted otherwise; unfinished replacements (``rf-new``) are deleted.
    """
    target = Path(target)
    done: list[str] = []
    if not target.parent.is_dir():
        return done
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.rf-(new|old)-[A-Za-z0-9_]{{8}}$")
    leftovers = sorted(p for p in target.parent.iterdir() if pattern.match(p.name))
    for item in leftovers:
        kind = pattern.match(item.name).group(1)  # type: ignore[union-attr]
        if kind == "old" and not target.exists() and (item / "run").is_dir():
            os.replace(item / "run", target)
            done.append(f"restored {target} from {item.name} (a replacement was interrupted)")
        else:
            done.append(f"removed {item.name}, left by an interrupted run")
        shutil.rmtree(item, ignore_errors=True)
    return done


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
