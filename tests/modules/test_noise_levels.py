"""Tests of UDML's reproducible per-sample noise-level draw."""

from __future__ import annotations

import torch

from robustfusion.modules.noise_levels import draw_noise_levels, noise_seeds, sample_hash


def test_levels_are_in_range_and_half_the_samples_are_clean() -> None:
    index = torch.arange(20000)
    levels = draw_noise_levels(index, seed=0, epoch=3, modality=1)
    assert levels.dtype == torch.get_default_dtype()
    assert int(levels.min()) == 1 and int(levels.max()) == 11
    # Half forced clean, plus 1/11 of the noisy half drawing v = 1.
    clean = float((levels == 1).float().mean())
    assert abs(clean - (0.5 + 0.5 / 11)) < 0.015
    noisy = levels[levels > 1]
    counts = torch.bincount(noisy.long(), minlength=12)[2:].float()
    assert float(counts.min()) / float(counts.max()) > 0.85  # levels 2..11 equally likely


def test_levels_depend_on_sample_not_on_batch_composition() -> None:
    index = torch.arange(100)
    full = draw_noise_levels(index, seed=7, epoch=2, modality=0)
    part = draw_noise_levels(index[[42, 3, 99]], seed=7, epoch=2, modality=0)
    assert torch.equal(part, full[[42, 3, 99]])
    assert torch.equal(full, draw_noise_levels(index, seed=7, epoch=2, modality=0))


def test_levels_change_with_epoch_seed_and_modality_but_clean_coin_is_shared() -> None:
    index = torch.arange(2000)
    base = draw_noise_levels(index, seed=0, epoch=0, modality=0)
    for other in (
        draw_noise_levels(index, seed=1, epoch=0, modality=0),
        draw_noise_levels(index, seed=0, epoch=1, modality=0),
        draw_noise_levels(index, seed=0, epoch=0, modality=1),
    ):
        assert float((other != base).float().mean()) > 0.3
    # The clean coin is per (seed, sample, epoch): modality 1 is never noisy where modality 0 was
    # forced clean, so a sample is clean in all modalities or none (up to v = 1 draws).
    other = draw_noise_levels(index, seed=0, epoch=0, modality=1)
    both_noisy = (base > 1) & (other > 1)
    assert float(both_noisy.float().mean()) > 0.35


def test_hash_and_noise_seeds_are_distinct_streams() -> None:
    index = torch.arange(1000)
    h = sample_hash(index, 1, 2)
    assert h.dtype == torch.long and int(h.min()) >= 0 and int(h.max()) < 2**31
    assert len(set(h.tolist())) > 990
    assert not torch.equal(noise_seeds(index, 0, 0, 0), noise_seeds(index, 0, 0, 1))


def test_all_levels_at_once_equal_the_levels_of_each_modality() -> None:
    from robustfusion.modules.noise_levels import draw_all_noise_levels

    index = torch.arange(300)
    every = draw_all_noise_levels(index, seed=3, epoch=2, modalities=4)
    for j in range(4):
        assert torch.equal(every[:, j], draw_noise_levels(index, seed=3, epoch=2, modality=j))
    clean = (every == 1).all(dim=1)
    assert 0.4 < float(clean.float().mean()) < 0.6  # one coin per sample for all modalities
