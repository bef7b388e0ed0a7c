"""NYU Depth v2 scene classification (RGB-D), 10 classes, 795/654 train/test, as in TMC / QMF.

Split: ``splits.mat`` of the official release (``trainNdxs`` 795, ``testNdxs`` 654, the standard
split of Silberman et al., 2012), applied by :mod:`robustfusion.data.prepare.nyudv2`. Scenes: the 9 most frequent
``sceneTypes`` (bathroom, bedroom, bookstore, classroom, dining_room, home_office, kitchen,
living_room, office) and ``others`` for the other 18 types (Gupta et al., 2015; TRecgNet, QMF).

Layout read = QMF's ``nyud2_trainvaltest``: ``OUT/{train,test}/<class>/<index>.png``, each
the RGB image and the depth image side by side. Deviation: QMF's release codes depth as HHA
(3 channels, needs the camera model and floor estimation); ``prepare`` writes depth in metres
scaled to 0-255 over ``max_depth`` (10 m), replicated to 3 channels. A user who has QMF's HHA
release can pass that folder as ``--data-root`` directly: the loader reads both.
Validation: a seeded stratified 10 % of train (QMF selects on test; we never do).
"""

from __future__ import annotations

from pathlib import Path

from robustfusion.data.base import DatasetInfo, DataSplits, ModalityInfo
from robustfusion.data.cache import dataset_root
from robustfusion.data.datasets.rgbd import PairedRGBDDataset, scan_split
from robustfusion.data.media.images import INTENSITY_SCALE
from robustfusion.data.stratify import stratified_holdout
from robustfusion.errors import ConfigError, DataError
from robustfusion.registry import DATASETS

NAME = "nyudv2"
#: The nine most frequent NYU Depth v2 scene types; every other type is ``others``.
FREQUENT_SCENES = (
    "bathroom",
    "bedroom",
    "bookstore",
    "classroom",
    "dining_room",
    "home_office",
    "kitchen",
    "living_room",
    "office",
)
CLASSES: tuple[str, ...] = (*FREQUENT_SCENES, "others")
LABELED_FILE = "nyu_depth_v2_labeled.mat"
SPLITS_FILE = "splits.mat"
#: Present while ``prepare`` runs; a folder holding it is incomplete.
UNFINISHED = ".prepare-unfinished"


def scene_class(scene_type: str) -> str:
    """The 10-class label of a NYU ``sceneTypes`` entry."""
    return scene_type if scene_type in FREQUENT_SCENES else "others"


@DATASETS.register(
    NAME, "NYU Depth v2 RGB-D scenes, 10 classes, 795/654 (QMF layout; `robustfusion prepare`)"
)
def load(
    root: Path | None, seed: int, image_size: int = 224, val_fraction: float = 0.1
) -> DataSplits:
    """Load QMF's layout from ``root`` (default: the dataset cache).

    Args:
        image_size: side of the square crops (224 as QMF; smaller for quick runs).
        val_fraction: share of each training class held out for validation.
    """
    root = dataset_root(NAME, root)
    fix = f": run `robustfusion prepare {NAME} --raw RAW --out {root}` (resumable)"
    if image_size < 8:
        raise ConfigError(f"image_size must be >= 8, got {image_size}")
    if (root / UNFINISHED).exists():
        raise DataError(f"the preparation of {root} did not finish{fix}")
    train_all = scan_split(root / "train", None, fix)
    classes = sorted({p.parent.name for p, _ in train_all})
    train_all = scan_split(root / "train", classes, fix)
    test = scan_split(root / "test", classes, fix)
    if not train_all or not test:
        raise DataError(f"{root} holds {len(train_all)} train and {len(test)} test images{fix}")
    keep, held = stratified_holdout([y for _, y in train_all], val_fraction, seed)
    info = DatasetInfo(
        name=NAME,
        modalities=(
            ModalityInfo("rgb", (3, image_size, image_size), "image", INTENSITY_SCALE),
            ModalityInfo("depth", (3, image_size, image_size), "image", INTENSITY_SCALE),
        ),
        num_classes=len(classes),
        class_names=tuple(classes),
        description="NYU Depth v2 scene classification from RGB and depth (QMF/TMC protocol)",
        extra={
            "default_encoders": {"rgb": "resnet18", "depth": "resnet18"},
            "root": str(root),
            "split": f"official 795/654; val = stratified {val_fraction:.0%} of train, seed {seed}",
        },
    )
    return DataSplits(
        train=PairedRGBDDataset(
            [train_all[i] for i in keep], train=True, image_size=image_size, fix=fix
        ),
        val=PairedRGBDDataset(
            [train_all[i] for i in held], train=False, image_size=image_size, fix=fix
        ),
        test=PairedRGBDDataset(test, train=False, image_size=image_size, fix=fix),
        info=info,
    )
