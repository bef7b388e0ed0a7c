"""rgbd_scenes: synthetic RGB-D room scenes for semantic segmentation, built in memory in seconds.

Every image is a pinhole view (60 degree field of view) of a room: a back wall (``wall``) at
4.5-5.5 m, slightly turned, above a receding ``floor`` (1.5 m at the bottom row, depth from the
camera height and the row, meeting the wall), with up to six objects. Classes and the stream
that tells each apart (``DatasetInfo.extra["cues"]``):

* ``niche``: an alcove recessed 1.5-2.5 m into the wall, painted like the wall: **depth only**.
* ``poster_red`` / ``poster_blue``: flat on the wall, same depth, differing in hue: **colour
  only** (against each other and against the wall).
* ``panel`` (teal, flat on the wall, half of them down to the floor) and ``box`` (the same teal,
  standing on the floor 1.8-4.2 m away): panel vs box by **depth only**, box vs floor (same
  depths) and panel vs posters by colour: each needs **both**. ``wall`` likewise needs both
  (colour against the posters and the panel, depth against the niche).
* ``floor``: its colour; ``lamp`` (orange, hanging 0.8-1.3 m from the camera): either stream.

Nuisance: per-image illumination gain and white balance, a lighting gradient, per-image albedo
jitter (shared by the two classes of one paint), wood-plank stripes on the floor, pixel noise
(RGB quantised to 0-255 integers); depth noise growing with the square of depth (Kinect's, Nguyen
et al. 2012), holes (depth 0) at 0.5 % of pixels and at half the pixels beside an occlusion edge
(Kinect's shadows). A border of ``max(1, size // 32)`` pixels is void
(:data:`robustfusion.tasks.IGNORE_INDEX`).

**Data are fixed**: all three splits come from :data:`DATA_SEED` (mixed with ``data_seed``), never
from the training ``seed``, so runs with different seeds see the same images, as with a real
dataset. Each split has its own stream, drawn in chunks of :data:`CHUNK` images, so a split's
first ``n`` images do not depend on its size nor on the other splits' sizes.

Storage: ``rgb`` ``[3, S, S]`` standardised per channel, ``depth`` ``[1, S, S]`` standardised over
valid (non-zero) pixels, both with the training split's mean and std; a hole stores
``-mean / std``. ``intensity_scale``: one 0-255 unit of RGB (``1 / mean channel std``), one metre
of depth (``1 / std``). The raw values are :func:`render` ``(split, count, size)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robustfusion.accepts import integer
from robustfusion.data.base import DatasetInfo, DataSplits, ModalityInfo, TensorMultimodalDataset
from robustfusion.errors import ConfigError
from robustfusion.registry import DATASETS
from robustfusion.tasks import IGNORE_INDEX

#: Seed of the fixed data (every split); ``data_seed`` is mixed in.
DATA_SEED = 20_240_611
#: Images drawn per random stream (the unit that keeps prefixes stable).
CHUNK = 64
SPLITS = ("train", "val", "test")
CLASSES: tuple[str, ...] = (
    "wall",
    "floor",
    "niche",
    "poster_red",
    "poster_blue",
    "panel",
    "box",
    "lamp",
)
#: Which single stream identifies each class: ``colour``, ``depth``, ``either`` or ``both``.
CUES: dict[str, str] = {
    "wall": "both",
    "floor": "colour",
    "niche": "depth",
    "poster_red": "colour",
    "poster_blue": "colour",
    "panel": "both",
    "box": "both",
    "lamp": "either",
}
WALL, FLOOR, NICHE, POSTER_RED, POSTER_BLUE, PANEL, BOX, LAMP = range(len(CLASSES))
#: Albedo of each class in 0-255 units (the niche is painted like the wall, the box like the panel).
ALBEDO = np.array(
    [
        (190, 185, 170),  # wall
        (130, 90, 55),  # floor
        (190, 185, 170),  # niche
        (195, 50, 50),  # poster_red
        (50, 70, 185),  # poster_blue
        (50, 140, 130),  # panel
        (50, 140, 130),  # box
        (235, 185, 35),  # lamp
    ],
    dtype=np.float32,
)
#: Probability that an image holds each object (in painting order: later ones occlude).
OBJECT_PROBABILITY = {
    NICHE: 0.9,
    PANEL: 0.9,
    POSTER_RED: 0.8,
    POSTER_BLUE: 0.8,
    BOX: 0.8,
    LAMP: 0.5,
}
FOCAL = 0.87  # focal length in image widths (60 degree horizontal field of view)
#: Range of each option (the side ``size`` is at least 16 so that every object keeps pixels).
LIMITS: dict[str, tuple[int, int]] = {
    "size": (16, 512),
    "train": (1, 100_000),
    "val": (1, 100_000),
    "test": (1, 100_000),
    "data_seed": (0, 2**31 - 1),
}


@dataclass(frozen=True)
class RawScenes:
    """Raw images of one split: ``rgb`` ``[N, 3, S, S]`` in 0-255, ``depth`` ``[N, 1, S, S]`` in
    metres (0 = hole), ``labels`` ``[N, S, S]`` (int64, ``IGNORE_INDEX`` on the void border)."""

    rgb: np.ndarray
    depth: np.ndarray
    labels: np.ndarray


def render(split: str, count: int, size: int, data_seed: int = 0) -> RawScenes:
    """The raw, unstandardised scenes of ``split`` (its first ``count`` images at ``size``)."""
    if split not in SPLITS:
        raise ConfigError(f"rgbd_scenes: unknown split {split!r}; choose one of {SPLITS}")
    parts = [
        _render_chunk(
            np.random.default_rng([DATA_SEED, data_seed, SPLITS.index(split), c]),
            min(CHUNK, count - c * CHUNK),
            size,
        )
        for c in range(-(-count // CHUNK))
    ]
    if not parts:
        return RawScenes(
            np.zeros((0, 3, size, size), np.float32),
            np.zeros((0, 1, size, size), np.float32),
            np.zeros((0, size, size), np.int64),
        )
    return RawScenes(*(np.concatenate(arrays) for arrays in zip(*parts, strict=True)))


def _render_chunk(rng: np.random.Generator, n: int, size: int) -> tuple[np.ndarray, ...]:
    """``n`` scenes: every draw for the chunk comes from ``rng``, vectorised over the images."""
    draw_n = CHUNK  # draw for a full chunk so that a truncated chunk is a prefix of the full one
    s = size
    f = FOCAL * s
    ys = np.arange(s, dtype=np.float32)[None, :, None]
    xs = np.arange(s, dtype=np.float32)[None, None, :]

    def u(lo: float, hi: float, shape: tuple[int, ...] = ()) -> np.ndarray:
        return rng.uniform(lo, hi, (draw_n, *shape)).astype(np.float32)[:n]

    def col(v: np.ndarray) -> np.ndarray:
        return v[:, None, None]

    # camera and room: horizon row, camera height, wall distance and a slight wall tilt
    horizon = u(0.4, 0.5) * s
    height = u(0.9, 1.2)
    wall_z = u(4.5, 5.5)
    tilt = u(-0.08, 0.08)
    boundary = horizon + f * height / wall_z  # the row where the floor meets the wall
    wall_depth = col(wall_z) * (1 + col(tilt) * (xs / s - 0.5))
    floor = np.broadcast_to(ys >= col(boundary), (n, s, s))
    floor_depth = f * col(height) / np.maximum(ys - col(horizon), 1e-3)
    label = np.where(floor, FLOOR, WALL).astype(np.int64)
    depth = np.where(floor, np.minimum(floor_depth, wall_depth), wall_depth).astype(np.float32)
    jitter = u(0.93, 1.07, (len(CLASSES), 3))  # per-image, per-class albedo jitter
    jitter[:, NICHE], jitter[:, BOX] = jitter[:, WALL], jitter[:, PANEL]  # same paint, same look
    albedo = ALBEDO[None] * jitter  # [n, K, 3]
    stripes = 1 + 0.08 * np.sin(2 * np.pi * xs / col(u(0.08, 0.16) * s) + col(u(0, 6.3)))
    present = {k: u(0, 1) < p for k, p in OBJECT_PROBABILITY.items()}

    def paint(k: int, mask: np.ndarray, z: np.ndarray) -> None:
        nonlocal label, depth
        mask = mask & col(present[k])
        label = np.where(mask, k, label)
        depth = np.where(mask, z, depth).astype(np.float32)

    def wall_rect(
        width: tuple[float, float],
        height_: tuple[float, float],
        span: tuple[np.ndarray, ...],
        reach_floor: float = 0.0,
    ) -> np.ndarray:
        """A rectangle on the wall inside columns ``span``; down to the floor at that rate."""
        w, h = u(*width) * s, u(*height_) * s
        top = u(0, 1) * np.maximum(boundary - h - 0.05 * s, 0) + 0.05 * s
        left = span[0] + u(0, 1) * np.maximum(span[1] - span[0] - w, 0)
        bottom = np.where(u(0, 1) < reach_floor, boundary, top + h)
        return (
            (ys >= col(top))
            & (ys < col(bottom))
            & (xs >= col(left))
            & (xs < col(left + w))
            & (ys < col(boundary))
        )

    # the niche and the panel in opposite halves of the wall
    left_half = (np.zeros(n, np.float32), np.full(n, s / 2, np.float32))
    right_half = (np.full(n, s / 2, np.float32), np.full(n, s, np.float32))
    niche_left = u(0, 1) < 0.5
    niche_span = tuple(
        np.where(niche_left, a, b) for a, b in zip(left_half, right_half, strict=True)
    )
    panel_span = tuple(
        np.where(niche_left, b, a) for a, b in zip(left_half, right_half, strict=True)
    )
    paint(NICHE, wall_rect((0.3, 0.45), (0.25, 0.4), niche_span), wall_depth + col(u(1.5, 2.5)))
    paint(PANEL, wall_rect((0.25, 0.4), (0.2, 0.35), panel_span, 0.5), wall_depth)
    # posters anywhere on the wall or the panel (the niche cuts into them)
    whole = (np.zeros(n, np.float32), np.full(n, s, np.float32))
    for k in (POSTER_RED, POSTER_BLUE):
        paint(k, wall_rect((0.2, 0.35), (0.15, 0.3), whole) & (label != NICHE), wall_depth)
    # the box stands on the floor: its base row fixes its distance, its size in metres its extent
    base = boundary + u(0.1, 0.7) * (s - 1 - boundary)
    box_z = f * height / np.maximum(base - horizon, 1e-3)
    box_w, box_h = f * u(0.8, 1.6) / box_z, f * u(0.6, 1.2) / box_z
    left = u(0, 1) * (s - box_w)
    box = (
        (ys < col(base)) & (ys >= col(base - box_h)) & (xs >= col(left)) & (xs < col(left + box_w))
    )
    paint(BOX, box, np.broadcast_to(col(box_z), box.shape))
    # a spherical lamp hanging close to the camera
    lamp_z, radius_m = u(0.8, 1.3), u(0.12, 0.2)
    radius = f * radius_m / lamp_z
    cy, cx = u(0.1, 0.5) * s, u(0.15, 0.85) * s
    rho2 = ((ys - col(cy)) ** 2 + (xs - col(cx)) ** 2) / col(radius) ** 2
    bulge = col(radius_m) * np.sqrt(np.clip(1 - rho2, 0, 1))
    paint(LAMP, rho2 < 1, col(lamp_z) - bulge)

    # colour: each pixel's albedo (plank stripes on the floor) under an illumination gain, a white
    # balance and a lighting gradient, plus pixel noise; rounded to 0-255 integers
    colour = np.take_along_axis(albedo, label.reshape(n, -1, 1), axis=1)  # [n, S*S, 3]
    colour = colour.transpose(0, 2, 1).reshape(n, 3, s, s)
    shade = (
        np.where(label == FLOOR, stripes, 1.0)
        * col(u(0.8, 1.2))
        * (1 + col(u(-0.1, 0.1)) * (xs / s - 0.5) + col(u(-0.1, 0.1)) * (ys / s - 0.5))
    )
    balance = u(0.92, 1.08, (3,))[:, :, None, None]
    noise = rng.standard_normal((draw_n, 3, s, s), dtype=np.float32)[:n]
    rgb = np.clip(np.round(colour * (shade[:, None] * balance) + 6.0 * noise), 0, 255)

    # depth: Kinect-like noise, random holes and shadows beside depth edges
    sigma = 0.0012 + 0.0019 * (depth - 0.4) ** 2
    depth = depth + sigma * rng.standard_normal((draw_n, s, s), dtype=np.float32)[:n]
    # occlusion edges (a depth jump between two objects) lose half their pixels, as Kinect shadows
    jump_x = (np.abs(np.diff(depth, axis=2)) > 0.2) & (np.diff(label, axis=2) != 0)
    jump_y = (np.abs(np.diff(depth, axis=1)) > 0.2) & (np.diff(label, axis=1) != 0)
    edge = np.zeros((n, s, s), dtype=bool)
    edge[:, :, 1:] |= jump_x
    edge[:, :, :-1] |= jump_x
    edge[:, 1:] |= jump_y
    edge[:, :-1] |= jump_y
    holes = (rng.random((draw_n, s, s), dtype=np.float32)[:n] < 0.005) | (
        edge & (rng.random((draw_n, s, s), dtype=np.float32)[:n] < 0.5)
    )
    depth = np.where(holes, 0.0, depth).astype(np.float32)

    border = max(1, size // 32)
    label[:, :border] = label[:, -border:] = IGNORE_INDEX
    label[:, :, :border] = label[:, :, -border:] = IGNORE_INDEX
    return rgb.astype(np.float32), depth[:, None], label


def _count(name: str, value: object) -> int:
    """``value`` if it is an integer within :data:`LIMITS` ``[name]``, else a ConfigError."""
    low, high = LIMITS[name]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or not low <= value <= high
    ):
        raise ConfigError(
            f"rgbd_scenes: {name} must be an integer from {low} to {high}, got {value!r}"
        )
    return int(value)


@DATASETS.register(
    "rgbd_scenes",
    "synthetic RGB-D rooms, per-pixel labels of 8 classes, some told by colour only, some by "
    "depth only (built in memory)",
)
def load(
    root: Path | None,
    seed: int,
    size: int = 64,
    train: int = 512,
    val: int = 128,
    test: int = 256,
    data_seed: int = 0,
) -> DataSplits:
    """Build rgbd_scenes (``root`` and ``seed`` unused: the data are fixed, see the module doc).

    Args:
        size: image side ``S`` in pixels (square, at least 16).
        train, val, test: number of images of each split.
        data_seed: draws another fixed dataset (0: the standard one).
    """
    size = _count("size", size)
    counts = {
        "train": _count("train", train),
        "val": _count("val", val),
        "test": _count("test", test),
    }
    data_seed = _count("data_seed", data_seed)
    raw = {split: render(split, counts[split], size, data_seed) for split in SPLITS}
    train_rgb, train_depth = raw["train"].rgb, raw["train"].depth
    rgb_mean = train_rgb.mean((0, 2, 3), dtype=np.float64)
    rgb_std = np.sqrt(
        ((train_rgb - rgb_mean[:, None, None]) ** 2).mean((0, 2, 3), dtype=np.float64)
    )
    valid = train_depth[train_depth > 0]
    depth_mean = float(valid.mean(dtype=np.float64))
    depth_std = float(np.sqrt(((valid - depth_mean) ** 2).mean(dtype=np.float64)))
    rgb_scale = 1.0 / float(rgb_std.mean())
    shift = rgb_mean.astype(np.float32)[:, None, None]
    scale = (1.0 / rgb_std).astype(np.float32)[:, None, None]

    def split_dataset(scenes: RawScenes) -> TensorMultimodalDataset:
        rgb = (scenes.rgb - shift) * scale
        depth = (scenes.depth - np.float32(depth_mean)) * np.float32(1.0 / depth_std)
        return TensorMultimodalDataset(
            {"rgb": torch.from_numpy(rgb), "depth": torch.from_numpy(depth)},
            torch.from_numpy(scenes.labels),
        )

    info = DatasetInfo(
        name="rgbd_scenes",
        modalities=(
            ModalityInfo("rgb", (3, size, size), "image", rgb_scale),
            ModalityInfo("depth", (1, size, size), "map", 1.0 / depth_std),
        ),
        num_classes=len(CLASSES),
        class_names=CLASSES,
        description="synthetic RGB-D rooms: 8 classes, some told by colour only, some by depth",
        task="segmentation",
        extra={
            "cues": dict(CUES),
            "rgb_mean": tuple(float(v) for v in rgb_mean),
            "rgb_std": tuple(float(v) for v in rgb_std),
            "rgb_units": "0-255 intensity",
            "depth_mean": depth_mean,
            "depth_std": depth_std,
            "depth_units": "metres; 0 = missing (stored as -depth_mean / depth_std)",
            "ignore_index": IGNORE_INDEX,
            "split": (
                f"fixed synthetic data (data seed {DATA_SEED}+{data_seed}): "
                f"{counts['train']}/{counts['val']}/{counts['test']} images of {size}x{size}; "
                "the training seed does not change them"
            ),
        },
    )
    return DataSplits(
        train=split_dataset(raw["train"]),
        val=split_dataset(raw["val"]),
        test=split_dataset(raw["test"]),
        info=info,
    )


#: The same ranges for ``load_dataset`` and ``--dataset-option`` (read by ``option_accepts``).
load.option_limits = {name: integer(*LIMITS[name]) for name in LIMITS}  # type: ignore[attr-defined]
