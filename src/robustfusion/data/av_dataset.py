"""Old import path, kept for ``benchmarks/bench_loader.py``: the module is now
:mod:`robustfusion.data.datasets.av_clips` (remove this file once nothing imports it)."""

from robustfusion.data.datasets.av_clips import (
    AVClipDataset,
    ClipEntry,
    frame_dir_name,
    frame_name,
    load_av_splits,
    read_index,
    write_index_rows,
)

__all__ = [
    "AVClipDataset",
    "ClipEntry",
    "frame_dir_name",
    "frame_name",
    "load_av_splits",
    "read_index",
    "write_index_rows",
]
