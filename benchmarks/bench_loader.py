"""Is data loading the bottleneck? Loader samples/s against the model's training-step samples/s.

Builds a synthetic prepared CREMA-D folder (real JPEG frames at the release's 480 x 360, cached
257 x 188 spectrograms, the layout ``robustfusion prepare cremad`` writes), then measures

* the loader: ``DataLoader`` over the training split (random resized crop + flip to 224, JPEG
  decoding, ``.npy`` reading, collation) with 0, 1, 2 ... worker processes;
* the training step: ResNet-18 audio + ResNet-18 visual encoders, ``static`` concat fusion,
  forward + backward + Adam step on the same batch size, on this machine's CPU (or ``--device``).

Every process uses one torch thread unless ``--threads`` says otherwise. Example::

    python benchmarks/bench_loader.py --clips 96 --batch-size 32 --workers 0 1 2 --steps 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from robustfusion.atomic import save_image, save_npy, write_json, write_text
from robustfusion.data import DatasetInfo, collate
from robustfusion.data.datasets import cremad
from robustfusion.data.datasets.av_clips import (
    ClipEntry,
    frame_dir_name,
    frame_name,
    write_index_rows,
)
from robustfusion.encoders import build_encoder
from robustfusion.methods.base import MethodSpec, build_method
from robustfusion.model import MultimodalModel
from robustfusion.types import Batch


def make_prepared(
    root: Path, clips: int, frames: int = 3, height: int = 360, seed: int = 0
) -> Path:
    """A synthetic prepared CREMA-D folder with ``clips`` clips split 80/20 into train/test;
    frames are ``4/3 * height`` x ``height`` (CREMA-D's VideoFlash: 480 x 360)."""
    rng = np.random.default_rng(seed)
    entries = {"train": [], "test": []}
    for i in range(clips):
        clip = f"syn{i:05d}"
        split = "test" if i % 5 == 4 else "train"
        entries[split].append(ClipEntry(clip, i % 6, frames))
        save_npy(root / "spectrograms" / f"{clip}.npy", rng.normal(-4, 2, (257, 188)).astype("f4"))
        for k in range(frames):
            # Smooth content compresses like a face video frame, unlike white noise.
            base = rng.integers(0, 255, (45, 60, 3), dtype=np.uint8)
            image = Image.fromarray(base).resize((height * 4 // 3, height), Image.BILINEAR)
            path = root / frame_dir_name(1) / clip / frame_name(k, "jpg")
            save_image(path, image, quality=95)
    for split, rows in entries.items():
        write_text(root / f"index_{split}.csv", write_index_rows(rows))
    write_json(
        root / "meta.json",
        {
            "dataset": "cremad",
            "format": 1,
            "fps": 1,
            "frame_format": "jpg",
            "classes": list(cremad.CLASSES),
            "spectrogram_shape": [257, 188],
            "spectrogram": cremad.SPECTROGRAM.to_dict(),
        },
    )
    return root


def loader_rate(
    dataset: torch.utils.data.Dataset, batch_size: int, workers: int, seed: int
) -> tuple[float, float]:
    """Samples per wall-clock second of one pass over ``dataset`` (after the first batch: worker
    start-up is not counted), and this process's CPU seconds per sample (meaningful with 0
    workers, where all loading happens here; robust to other load on a shared machine)."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=lambda _: torch.set_num_threads(1),
        drop_last=True,
    )
    iterator = iter(loader)
    next(iterator)
    start, cpu, count = time.perf_counter(), time.process_time(), 0
    for batch in iterator:
        count += batch.batch_size
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if not count:
        return float("nan"), float("nan")
    return count / elapsed, cpu / count


def step_rate(info: DatasetInfo, batch: Batch, steps: int, device: str) -> tuple[float, float]:
    """Samples per wall-clock second of forward + backward + Adam on ``batch`` with ResNet-18
    encoders, and CPU seconds per sample of this process."""
    torch.manual_seed(0)
    encoders = {m.name: build_encoder("resnet18", m.shape, out_dim=512) for m in info.modalities}
    spec = MethodSpec(
        modalities=info.modality_names,
        feature_dims={m: 512 for m in info.modality_names},
        num_classes=info.num_classes,
    )
    model = MultimodalModel(encoders, build_method("static", spec)).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = batch.to(device)

    def one_step() -> None:
        optimizer.zero_grad()
        output = model(batch)
        loss = sum(model.method.losses(output, batch).values())
        loss.backward()
        optimizer.step()

    one_step()  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        one_step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    samples = steps * batch.batch_size
    return samples / (time.perf_counter() - start), (time.process_time() - cpu) / samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=120, help="synthetic clips (80 %% train)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument(
        "--frame-height", type=int, default=360, help="stored frame height (prepare frame_size)"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of this process")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--root", help="keep the synthetic folder here (default: a temp dir)")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else Path(tmp) / "cremad"
        start = time.perf_counter()
        if not (root / "meta.json").is_file():
            make_prepared(root, args.clips, height=args.frame_height)
        build_s = time.perf_counter() - start
        splits = cremad.load(root, 0, image_size=args.image_size, val_fraction=0.0)
        results: dict[str, object] = {
            "clips_train": len(splits.train),
            "batch_size": args.batch_size,
            "image_size": args.image_size,
            "frame_height": args.frame_height,
            "threads": args.threads,
            "device": args.device,
            "synthetic_build_s": round(build_s, 2),
            "loader_samples_per_s": {},
        }
        for workers in args.workers:
            rate, cpu = loader_rate(splits.train, args.batch_size, workers, seed=0)
            results["loader_samples_per_s"][str(workers)] = round(rate, 1)  # type: ignore[index]
            if workers == 0:
                results["loader_cpu_ms_per_sample"] = round(1000 * cpu, 2)
            print(f"loader, {workers} workers: {rate:8.1f} samples/s", file=sys.stderr)
        batch = collate([splits.train[i] for i in range(args.batch_size)])
        rate, cpu = step_rate(splits.info, batch, args.steps, args.device)
        results["train_step_samples_per_s"] = round(rate, 2)
        results["train_step_cpu_ms_per_sample"] = round(1000 * cpu, 1)
        print(f"training step ({args.device}): {rate:8.2f} samples/s", file=sys.stderr)
    print(json.dumps(results, indent=2))
    if args.out:
        write_json(Path(args.out), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
