"""Kinetics-Sounds: the 31-label lists and their second column, clip-id forms, class names from
folders (and their check), preparation from class-named MPEG-4 + AAC clips, loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures_av import make_kinetics_release

from robustfusion.data import load_dataset
from robustfusion.data.datasets import kinetics_sounds as ks
from robustfusion.data.prepare import kinetics_sounds as ks_prepare
from robustfusion.errors import DataError

pytest.importorskip("av")


def test_lists_have_31_labels_and_the_second_column_is_the_clip_length() -> None:
    train, test = ks.split_list("train"), ks.split_list("test")
    assert (len(train), len(test)) == (14799, 2597)
    assert sorted({y for _, _, y in train}) == list(range(31))
    assert sorted({y for _, _, y in test}) == list(range(31))
    assert {s for _, s, _ in train + test} == {10}
    for clip, seconds, _ in train:
        start, end = int(clip[12:18]), int(clip[19:25])
        assert end - start == seconds
    assert not {c[:11] for c, _, _ in train} & {c[:11] for c, _, _ in test}


def test_long_clip_id_expands_the_short_test_form() -> None:
    assert ks.long_clip_id("-3Mwkq-7TV4_2") == "-3Mwkq-7TV4_000002_000012"
    assert ks.long_clip_id("ab_cdefghij_47") == "ab_cdefghij_000047_000057"
    assert ks.long_clip_id("--4-0ihtnBU_000058_000068") == "--4-0ihtnBU_000058_000068"
    with pytest.raises(DataError, match="not a Kinetics clip id"):
        ks.long_clip_id("short")


def test_class_names_must_map_one_to_one() -> None:
    names = ks_prepare.class_names_from_folders([(0, "playing drums", "a"), (1, "typing", "b")])
    assert names[:2] == ("playing drums", "typing") and names[2] == "label_02"
    assert len(names) == 31
    with pytest.raises(DataError, match=r"label 0 .* several class folders .*b in 'y'"):
        ks_prepare.class_names_from_folders([(0, "x", "a"), (0, "y", "b")])
    with pytest.raises(DataError, match=r"folder 'x' holds clips of several labels"):
        ks_prepare.class_names_from_folders([(0, "x", "a"), (1, "x", "b")])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    base = tmp_path_factory.mktemp("ks")
    names = {0: "playing bagpipes", 3: "ripping paper", 7: "tapping guitar"}
    chosen = make_kinetics_release(base / "raw", labels=(0, 3, 7), class_names=names)
    out = ks_prepare.prepare(base / "raw", base / "prepared", workers=1, verbose=False)
    return out, chosen


def test_prepare_reads_labels_from_lists_and_names_from_folders(
    prepared: tuple[Path, dict],
) -> None:
    out, chosen = prepared
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"]["train"]["prepared"] == 9 and meta["counts"]["test"]["prepared"] == 3
    assert meta["classes"][0] == "playing bagpipes" and meta["classes"][7] == "tapping guitar"
    assert len(meta["classes"]) == 31
    test_clip = chosen["test"][0][0]  # short id form, found through its long file name
    spec = np.load(out / "spectrograms" / f"{test_clip}.npy", allow_pickle=False)
    assert spec.shape == (257, 625)  # the whole 10 s clip at 22.05 kHz, hop 353
    assert len(list((out / "Image-01-FPS" / test_clip).iterdir())) == 3


def test_load_has_31_classes_and_three_stacked_frames(prepared: tuple[Path, dict]) -> None:
    out, chosen = prepared
    splits = load_dataset("kinetics_sounds", root=out, seed=0, image_size=24)
    assert splits.info.num_classes == 31
    assert (len(splits.train) + len(splits.val), len(splits.test)) == (9, 3)
    assert len(splits.val) == 1
    item = splits.train[0]
    assert item["inputs"]["visual"].shape == (9, 24, 24)
    assert item["inputs"]["audio"].shape == (1, 257, 625)
    assert splits.info.modality("audio").shape == (1, 257, 625)
    assert splits.info.modality("audio").intensity_scale == 1.0
    assert sorted(set(splits.test.targets().tolist())) == [0, 3, 7]


def test_conflicting_class_folders_stop_preparation(tmp_path: Path) -> None:
    make_kinetics_release(tmp_path / "raw", labels=(0, 1), per_class_train=1, per_class_test=0,
                          class_names={0: "same", 1: "same"})  # fmt: skip
    with pytest.raises(DataError, match="folder 'same' holds clips of several labels"):
        ks_prepare.prepare(tmp_path / "raw", tmp_path / "out", workers=1, verbose=False)
    with pytest.raises(DataError, match="class-named clip folders"):
        ks_prepare.prepare(tmp_path / "nothing", tmp_path / "out", verbose=False)
