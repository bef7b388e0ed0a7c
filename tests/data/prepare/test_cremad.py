"""CREMA-D: shipped lists, preparation from a tiny fake release, loading, resumability, errors,
and ``robustfusion train --dataset cremad --method static`` end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_av import make_cremad_release, write_wav

from robustfusion.cli import main
from robustfusion.data import collate, load_dataset
from robustfusion.data.datasets import cremad
from robustfusion.data.prepare import cremad as cremad_prepare
from robustfusion.errors import ConfigError, DataError
from robustfusion.registry import DATASETS, PREPARERS

pytest.importorskip("av")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    base = tmp_path_factory.mktemp("cremad")
    chosen = make_cremad_release(base / "raw", per_class_train=3, per_class_test=1)
    out = cremad_prepare.prepare(base / "raw", base / "prepared", workers=1, verbose=False)
    return base / "raw", out, chosen


def test_shipped_lists_are_the_official_6698_744_split() -> None:
    train, test = cremad.split_list("train"), cremad.split_list("test")
    assert len(train) == 6698 and len(test) == 744
    assert not {c for c, _ in train} & {c for c, _ in test}
    assert np.bincount([y for _, y in test], minlength=6).tolist() == [114, 123, 140, 133, 129, 105]
    # The emotion code in the clip id agrees with the label everywhere.
    assert all(cremad.CLASSES[y] == clip.split("_")[2] for clip, y in train + test)
    assert "cremad" in DATASETS and "cremad" in PREPARERS


def test_prepare_writes_the_ogm_ge_layout(prepared: tuple[Path, Path, dict]) -> None:
    _, out, chosen = prepared
    clip = chosen["train"][0][0]
    frames = sorted((out / "Image-01-FPS" / clip).iterdir())
    assert [f.name for f in frames] == ["frame_00001.jpg", "frame_00002.jpg", "frame_00003.jpg"]
    spec = np.load(out / "spectrograms" / f"{clip}.npy", allow_pickle=False)
    assert spec.shape == (257, 188) and spec.dtype == np.float32
    meta = json.loads((out / "meta.json").read_text())
    assert meta["counts"]["train"] == {"listed": 6698, "prepared": 18, "missing": 6680, "failed": 0}
    assert meta["counts"]["test"]["prepared"] == 6
    assert meta["classes"] == list(cremad.CLASSES)
    assert not list(out.rglob(".*.tmp*"))


def test_load_gives_stratified_val_from_train_and_the_documented_shapes(
    prepared: tuple[Path, Path, dict],
) -> None:
    _, out, chosen = prepared
    splits = load_dataset("cremad", root=out, seed=0, image_size=32)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (16, 2, 6)
    val_clips = {e.clip for e in splits.val.entries}
    assert val_clips <= {c for c, _ in chosen["train"]}
    assert not val_clips & {e.clip for e in splits.train.entries}
    assert splits.info.num_classes == 6
    assert splits.info.modality("audio").shape == (1, 257, 188)
    assert splits.info.modality("visual").shape == (3, 32, 32)
    # the spectrogram is stored as ln|X| itself: one ln-magnitude unit is one stored unit
    assert splits.info.modality("audio").intensity_scale == 1.0
    assert splits.info.extra["default_encoders"] == {"audio": "resnet18", "visual": "resnet18"}
    item = splits.test[0]
    assert item["inputs"]["audio"].shape == (1, 257, 188)
    assert item["inputs"]["visual"].shape == (3, 32, 32)
    assert item["target"] == dict(chosen["test"])[splits.test.entries[0].clip]
    # Evaluation is deterministic; training augmentation is random but seeded.
    again = splits.test[0]["inputs"]["visual"]
    assert torch.equal(item["inputs"]["visual"], again)
    torch.manual_seed(1)
    a = splits.train[0]["inputs"]["visual"]
    torch.manual_seed(1)
    b = splits.train[0]["inputs"]["visual"]
    torch.manual_seed(2)
    c = splits.train[0]["inputs"]["visual"]
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Other seeds hold out other clips.
    other = load_dataset("cremad", root=out, seed=3, image_size=32)
    assert {e.clip for e in other.val.entries} != val_clips or len(val_clips) == 0


def test_three_frames_are_stacked_along_channels(prepared: tuple[Path, Path, dict]) -> None:
    _, out, _ = prepared
    splits = cremad.load(out, 0, image_size=16, frames=3)
    batch = collate([splits.test[i] for i in range(4)])
    assert batch.inputs["visual"].shape == (4, 9, 16, 16)
    assert batch.inputs["audio"].shape == (4, 1, 257, 188)
    assert splits.info.modality("visual").shape == (9, 16, 16)


def test_prepare_is_resumable_and_rebuilds_only_what_is_missing(
    prepared: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    raw, out, chosen = prepared
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    clip_a, clip_b, clip_c = (c for c, _ in chosen["train"][:3])
    (copy / "spectrograms" / f"{clip_a}.npy").unlink()
    shutil.rmtree(copy / "Image-01-FPS" / clip_b)
    stale = copy / "spectrograms" / f".{clip_a}.npy.abc.tmp.npy"
    stale.write_bytes(b"half written")
    kept = copy / "spectrograms" / f"{clip_c}.npy"
    os.utime(kept, (1_000_000, 1_000_000))
    cremad_prepare.prepare(raw, copy, workers=1, verbose=False)
    assert (copy / "spectrograms" / f"{clip_a}.npy").is_file()
    assert len(list((copy / "Image-01-FPS" / clip_b).iterdir())) == 3
    assert not stale.exists()
    assert kept.stat().st_mtime == 1_000_000  # untouched: resumed, not redone
    np.testing.assert_array_equal(
        np.load(copy / "spectrograms" / f"{clip_a}.npy"),
        np.load(out / "spectrograms" / f"{clip_a}.npy"),
    )
    with pytest.raises(ConfigError, match="prepared with other settings"):
        cremad_prepare.prepare(raw, copy, workers=1, frame_size=16, verbose=False)


@pytest.mark.slow
def test_parallel_preparation_gives_the_same_files(
    prepared: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    raw, out, chosen = prepared
    par = cremad_prepare.prepare(raw, tmp_path / "par", workers=2, verbose=False)
    assert (par / "index_train.csv").read_text() == (out / "index_train.csv").read_text()
    clip = chosen["test"][0][0]
    np.testing.assert_array_equal(
        np.load(par / "spectrograms" / f"{clip}.npy"), np.load(out / "spectrograms" / f"{clip}.npy")
    )


def test_missing_or_malformed_prepared_files_name_the_file_and_the_fix(
    prepared: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    _, out, chosen = prepared
    import shutil

    copy = tmp_path / "broken"
    shutil.copytree(out, copy)
    clip = chosen["test"][0][0]
    (copy / "spectrograms" / f"{clip}.npy").unlink()
    with pytest.raises(DataError, match=rf"{clip}\.npy is missing.*robustfusion prepare cremad"):
        cremad.load(copy, 0, image_size=32)
    (copy / "spectrograms" / f"{clip}.npy").write_bytes(b"garbage")
    splits = cremad.load(copy, 0, image_size=32)
    index = [e.clip for e in splits.test.entries].index(clip)
    with pytest.raises(DataError, match=rf"{clip}\.npy is malformed.*prepare cremad --raw RAW"):
        splits.test[index]
    frame = copy / "Image-01-FPS" / clip / "frame_00002.jpg"
    frame.write_bytes(b"not a jpeg")
    splits.test.frames = 3
    np.save(copy / "spectrograms" / f"{clip}.npy", np.zeros((257, 188), np.float32))
    with pytest.raises(DataError, match=r"frame_00002\.jpg is not a readable image"):
        splits.test[index]
    with pytest.raises(DataError, match=r"not a prepared cremad folder.*robustfusion prepare"):
        cremad.load(tmp_path / "empty", 0)


def test_raw_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no AudioWAV/ folder"):
        cremad_prepare.prepare(tmp_path, tmp_path / "out", verbose=False)
    (tmp_path / "AudioWAV").mkdir()
    with pytest.raises(DataError, match="none of the listed CREMA-D clips"):
        cremad_prepare.prepare(tmp_path, tmp_path / "out", verbose=False)
    with pytest.raises(DataError, match="needs the official release"):
        cremad_prepare.prepare(None, tmp_path / "out", verbose=False)


def test_an_undecodable_raw_video_is_reported_and_left_out(tmp_path: Path) -> None:
    chosen = make_cremad_release(tmp_path / "raw", per_class_train=1, per_class_test=1)
    bad, silent = chosen["train"][0][0], chosen["train"][1][0]
    (tmp_path / "raw" / "VideoFlash" / f"{bad}.flv").write_bytes(b"FLV\x01 broken")
    write_wav(tmp_path / "raw" / "AudioWAV" / f"{silent}.wav", np.zeros(0, np.float32), 16000)
    out = cremad_prepare.prepare(tmp_path / "raw", tmp_path / "out", workers=1, verbose=False)
    meta = json.loads((out / "meta.json").read_text())
    assert sorted(meta["failed"]) == sorted([bad, silent])
    assert f"{bad}.flv" in meta["failed"][bad]
    assert "holds no samples" in meta["failed"][silent]
    index = (out / "index_train.csv").read_text()
    assert bad not in index and silent not in index
    assert meta["counts"]["train"]["failed"] == 2 and meta["counts"]["train"]["prepared"] == 4


def test_cli_prepare_and_train_static_end_to_end(
    prepared: tuple[Path, Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.set_num_threads(1)
    raw, _, _ = prepared
    data_root = tmp_path / "cremad"
    assert main(["prepare", "cremad", "--raw", str(raw), "--out", str(data_root), "--option",
                 "workers=1"]) == 0  # fmt: skip
    assert capsys.readouterr().out.strip() == str(data_root)
    run_dir = tmp_path / "run"
    status = main(
        [
            "train",
            "--dataset", "cremad",
            "--data-root", str(data_root),
            "--method", "static",
            "--epochs", "1",
            "--batch-size", "8",
            "--dataset-option", "image_size=32",
            "--feature-dim", "32",
            "--hidden-dim", "32",
            "--no-progress",
            "--out", str(run_dir),
        ]
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics  # the trainer wrote its metrics
    assert (run_dir / "config.yaml").is_file()
    assert main(["train", "--dataset", "cremad", "--data-root", str(tmp_path / "none"),
                 "--epochs", "1", "--out", str(tmp_path / "r2")]) == 2  # fmt: skip
    assert "robustfusion prepare cremad" in capsys.readouterr().err


def test_the_default_resnet18_encoders_take_both_streams(prepared: tuple[Path, Path, dict]) -> None:
    from robustfusion.encoders import build_encoder

    torch.manual_seed(0)
    _, out, _ = prepared
    splits = cremad.load(out, 0, image_size=32, frames=3)
    batch = collate([splits.test[i] for i in range(2)])
    for modality in splits.info.modalities:
        name = splits.info.extra["default_encoders"][modality.name]
        encoder = build_encoder(name, modality.shape, out_dim=64).eval()
        with torch.no_grad():
            features = encoder(batch.inputs[modality.name])
        assert features.shape == (2, 64) and bool(torch.isfinite(features).all())
