"""Atomic writes: results appear complete or not at all (temp file in the same folder + rename)."""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON (byte-identical for equal data), atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_state_dict(path: Path, state: dict[str, torch.Tensor]) -> None:
    """``torch.save`` a plain state dict atomically (loadable with ``weights_only=True``).

    Serialised in memory first: saving to the temporary path would embed its random name in the
    archive, and equal weights would not give byte-identical files.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
