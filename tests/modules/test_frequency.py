"""Tests of the block DCT and the Frequency Ratio Metric (modules/frequency.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.fft import dct, dctn

from robustfusion.modules.frequency import (
    block_dct1d,
    block_dct2d,
    dct_matrix,
    frequency_bands,
    frm,
    frm_modalities,
    frm_per_sample,
)


def _naive_frm(x: np.ndarray, p: int, q: int, eps: float = 1e-6) -> np.ndarray:
    """Per-sample FRM by scipy, one patch at a time (channel-normalised)."""
    b, c, h, w = x.shape
    out = np.zeros(b)
    for n in range(b):
        for ch in range(c):
            for i in range(h // p):
                for j in range(w // p):
                    block = dctn(x[n, ch, i * p : (i + 1) * p, j * p : (j + 1) * p], norm="ortho")
                    low = block[:q, :q]
                    high = block[::-1, ::-1][:q, :q]
                    out[n] += np.abs(low / (high + eps)).sum()
    return out / c


def test_dct_matrix_is_orthonormal_and_matches_scipy() -> None:
    d = dct_matrix(8)
    torch.testing.assert_close(d @ d.T, torch.eye(8, dtype=torch.float64))
    x = np.random.default_rng(0).normal(size=8)
    np.testing.assert_allclose(d.numpy() @ x, dct(x, norm="ortho"), atol=1e-12)


def test_block_dct2d_equals_scipy_dctn_per_patch() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 16, 24))
    coefficients = block_dct2d(torch.from_numpy(x), patch=8)
    assert coefficients.shape == (2, 3, 2, 3, 8, 8)
    for i in range(2):
        for j in range(3):
            expected = dctn(
                x[:, :, i * 8 : (i + 1) * 8, j * 8 : (j + 1) * 8], axes=(2, 3), norm="ortho"
            )
            np.testing.assert_allclose(coefficients[:, :, i, j].numpy(), expected, atol=1e-12)


def test_block_dct2d_drops_partial_patches_and_accepts_hw_maps() -> None:
    x = torch.randn(2, 17, 9, dtype=torch.float64)
    coefficients = block_dct2d(x, patch=8)
    assert coefficients.shape == (2, 1, 2, 1, 8, 8)
    expected = dctn(x[1, 8:16, 0:8].numpy(), norm="ortho")
    np.testing.assert_allclose(coefficients[1, 0, 1, 0].numpy(), expected, atol=1e-12)


def test_block_dct1d_equals_scipy_dct_per_block() -> None:
    x = torch.randn(3, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    coefficients = block_dct1d(x, patch=8)
    assert coefficients.shape == (3, 2, 8)
    np.testing.assert_allclose(
        coefficients[:, 1].numpy(), dct(x[:, 8:16].numpy(), axis=1, norm="ortho"), atol=1e-12
    )


def test_high_band_is_flipped_within_the_block() -> None:
    c = torch.arange(64.0).reshape(8, 8)
    low, high = frequency_bands(c, q=2)
    assert low.tolist() == [[0.0, 1.0], [8.0, 9.0]]
    assert high.tolist() == [[63.0, 62.0], [55.0, 54.0]]  # high[i, j] = C[7 - i, 7 - j]
    low1, high1 = frequency_bands(torch.arange(8.0), q=2, dims=1)
    assert low1.tolist() == [0.0, 1.0] and high1.tolist() == [7.0, 6.0]


def test_frm_equals_a_naive_scipy_computation() -> None:
    x = np.random.default_rng(3).normal(size=(4, 3, 16, 16))
    expected = _naive_frm(x, p=8, q=2)
    got = frm_per_sample(torch.from_numpy(x).float(), patch=8, q=2)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(float(frm(torch.from_numpy(x))), expected.sum(), rtol=1e-10)


def test_frm_is_finite_and_exact_for_values_of_1e10() -> None:
    # Smooth images: almost no high-frequency energy, so the ratio is huge.
    ramp = torch.linspace(0, 1, 16)
    x = (ramp[None, :] + ramp[:, None]).expand(8, 1, 16, 16).contiguous() * 1e4
    value = frm(x.float())
    assert torch.isfinite(value) and float(value) > 1e10
    expected = _naive_frm(x.double().numpy(), p=8, q=2).sum()
    assert float(value) == pytest.approx(expected, rel=1e-5)
    # A constant block (high band exactly 0) divides by eps, never by 0.
    assert torch.isfinite(frm(torch.full((2, 1, 8, 8), 3.0)))
    # The denominator is floored, so even eps = 0 never divides by zero.
    assert torch.isfinite(frm_per_sample(torch.zeros(1, 8), patch=8, q=2, eps=0.0))


def test_low_frequency_images_have_higher_frm_than_noise() -> None:
    g = torch.Generator().manual_seed(4)
    noise = torch.randn(16, 1, 16, 16, generator=g)
    smooth = torch.nn.functional.avg_pool2d(noise, 5, stride=1, padding=2)
    assert float(frm(smooth)) > 3 * float(frm(noise))


def test_frm_counts_only_present_samples_rescaled_to_the_batch() -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 1, 8, 8, generator=g)
    present = torch.tensor([True, False, True, True, False, True])
    per_sample = frm_per_sample(x)
    expected = per_sample[present].sum() * 6 / 4
    torch.testing.assert_close(frm(x, present), expected)
    assert float(frm(x, torch.zeros(6, dtype=torch.bool))) == 0.0


def test_small_maps_and_short_vectors_shrink_the_patch() -> None:
    assert torch.isfinite(frm(torch.randn(3, 1, 4, 6))).item()
    # mfeat's 6-dimensional view: one block of 6, low = C[0:2], high = C[5], C[4].
    v = torch.randn(2, 6, dtype=torch.float64)
    c = torch.from_numpy(dct(v.numpy(), axis=1, norm="ortho"))
    expected = (c[:, :2].abs() / (c[:, [5, 4]] + 1e-6).abs()).sum(1)
    torch.testing.assert_close(frm_per_sample(v, patch=8, q=2), expected)


def test_channel_norm_makes_channel_counts_comparable() -> None:
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    rgb = x.expand(2, 3, 8, 8)
    torch.testing.assert_close(frm(rgb), frm(x))
    torch.testing.assert_close(frm(rgb, channel_norm=False), 3 * frm(x))


def test_mean_reduction_is_the_sum_over_a_constant_and_ignores_absent_samples() -> None:
    x = torch.randn(4, 3, 16, 24, generator=torch.Generator().manual_seed(7))
    # 4 samples x 3 channels x 6 patches x 4 coefficient pairs.
    torch.testing.assert_close(
        frm(x, reduction="mean"), frm(x, channel_norm=False) / (4 * 3 * 6 * 4)
    )
    present = torch.tensor([True, True, False, False])
    torch.testing.assert_close(frm(x, present, reduction="mean"), frm(x[:2], reduction="mean"))
    with pytest.raises(ValueError, match="reduction"):
        frm(x, reduction="max")


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_frm_modalities_equals_one_frm_call_per_modality(reduction: str) -> None:
    g = torch.Generator().manual_seed(8)
    inputs = {
        "fou": torch.randn(5, 76, generator=g),
        "mor": torch.randn(5, 6, generator=g),
        "image": torch.randn(5, 1, 8, 8, generator=g),
        "pix": torch.randn(5, 240, generator=g),
        "rgb": torch.randn(5, 3, 16, 12, generator=g),
    }
    present = {m: torch.rand(5, generator=g) > 0.4 for m in inputs}
    together = frm_modalities(inputs, present, reduction=reduction)
    separate = torch.stack([frm(x, present[m], reduction=reduction) for m, x in inputs.items()])
    torch.testing.assert_close(together, separate)
    torch.testing.assert_close(
        frm_modalities(inputs, reduction=reduction),
        torch.stack([frm(x, reduction=reduction) for x in inputs.values()]),
    )
