"""robustfusion.rng: per-sample draws depend only on (keys, index, position); distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robustfusion import rng
from robustfusion.rng import Stream, stream

MASK = (1 << 64) - 1


def reference_bits(key: int, index: int, position: int) -> int:
    """The documented construction in plain unsigned Python ints (SplitMix64)."""

    def mix(z: int) -> int:
        z &= MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    golden = 0x9E3779B97F4A7C15
    start = mix(key + index * golden)
    return mix(start + (position + 1) * golden)


def test_int64_tensor_arithmetic_matches_unsigned_splitmix64() -> None:
    s = stream(3, "check", "train", 2, 1)
    index = torch.tensor([0, 1, 7, 123456789, 2**40 + 5, -3])
    words = s.bits(index, 5)
    for b, i in enumerate(index.tolist()):
        for j in range(5):
            assert int(words[b, j]) & MASK == reference_bits(s.key & MASK, i, j)


DRAWS = {
    "bits": lambda s, i: s.bits(i, (3, 4)),
    "seeds": lambda s, i: s.seeds(i, 7),
    "integers": lambda s, i: s.integers(i, 11, (2, 3)),
    "uniform": lambda s, i: s.uniform(i, (5,)),
    "uniform64": lambda s, i: s.uniform(i, (2, 2), torch.float64),
    "normal": lambda s, i: s.normal(i, (3, 5)),
    "normal64": lambda s, i: s.normal(i, (7,), torch.float64),
    "bernoulli": lambda s, i: s.bernoulli(i, 0.3, (4,)),
}


@pytest.mark.parametrize("kind", sorted(DRAWS))
def test_a_sample_gets_the_same_draw_whatever_the_batch(kind: str) -> None:
    draw = DRAWS[kind]
    s = stream(0, "test", "train", 4, 2)
    index = torch.arange(1000, 1300)
    full = draw(s, index)
    assert torch.equal(full, draw(s, index))  # a second call
    assert torch.equal(full, draw(stream(0, "test", "train", 4, 2), index))  # a new object
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(1))
    assert torch.equal(draw(s, index[perm]), full[perm])  # any order
    for rows in ([17], [299, 0, 5], list(range(0, 300, 7))):  # any batch size
        assert torch.equal(draw(s, index[rows]), full[rows])
    assert torch.equal(draw(s, index.int()), full)  # any integer dtype


def test_element_position_not_the_shape_keys_a_draw() -> None:
    s = stream(1, "position")
    index = torch.arange(50)
    assert torch.equal(s.bits(index, (3, 4)).reshape(50, 12), s.bits(index, 12))
    assert torch.equal(s.bits(index, 12)[:, :5], s.bits(index, 5))
    assert torch.equal(s.normal(index, 9)[:, :5], s.normal(index, 5))
    assert torch.equal(s.uniform(index, 6)[:, :4], s.uniform(index, 4))


def test_keys_separate_streams() -> None:
    index = torch.arange(2000)
    base = stream(0, "a", "train", 0, 0).bits(index)
    for other in (
        stream(1, "a", "train", 0, 0),
        stream(0, "b", "train", 0, 0),
        stream(0, "a", "val", 0, 0),
        stream(0, "a", "train", 1, 0),
        stream(0, "a", "train", 0, 1),
        stream(0, "a", "train", 0),
        stream(0, "a", 0, "train", 0),  # order matters
    ):
        assert float((other.bits(index) == base).float().mean()) < 0.01
    # the type of a part is part of the key; numpy integers are integers
    assert len({rng.key(1), rng.key(1.0), rng.key("1"), rng.key(True, 0)}) == 4
    assert rng.key(np.int64(7), "x") == rng.key(7, "x")
    with pytest.raises(TypeError, match="int, str or float"):
        rng.key(None)  # type: ignore[arg-type]


def test_neighbouring_indices_and_positions_are_uncorrelated() -> None:
    u = stream(5, "corr").uniform(torch.arange(20001), (2,), torch.float64)
    centred = u - 0.5
    across = float((centred[:-1, 0] * centred[1:, 0]).mean()) * 12  # correlation
    within = float((centred[:, 0] * centred[:, 1]).mean()) * 12
    assert abs(across) < 0.03 and abs(within) < 0.03
    z = stream(5, "corr").normal(torch.arange(20000), (2,))
    assert abs(float((z[:, 0] * z[:, 1]).mean())) < 0.03  # the cos/sin pair of one word


def _ks(values: torch.Tensor, cdf) -> float:
    """Kolmogorov-Smirnov distance of a sample from a continuous distribution."""
    x = values.flatten().double().sort().values
    n = x.numel()
    f = cdf(x)
    upper = torch.arange(1, n + 1, dtype=torch.float64) / n - f
    lower = f - torch.arange(0, n, dtype=torch.float64) / n
    return float(torch.maximum(upper, lower).max())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uniform_distribution(dtype: torch.dtype) -> None:
    u = stream(0, "uniform").uniform(torch.arange(50000), (2,), dtype)
    assert u.dtype == dtype and float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.005
    assert abs(float(u.var()) - 1 / 12) < 0.002
    assert _ks(u, lambda x: x) < 1.63 / math.sqrt(u.numel())  # KS test at the 1 % level
    bits = 53 if dtype == torch.float64 else 24
    scaled = u.double() * 2.0**bits
    assert torch.equal(scaled, scaled.floor())  # exact k / 2^bits: identical on every device


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normal_distribution(dtype: torch.dtype) -> None:
    z = stream(0, "normal").normal(torch.arange(25000), (4,), dtype)
    assert z.dtype == dtype and bool(torch.isfinite(z).all())
    assert abs(float(z.mean())) < 0.01
    assert abs(float(z.var()) - 1.0) < 0.02
    assert abs(float((z**4).mean()) - 3.0) < 0.1  # Gaussian tails, not just two moments
    assert _ks(z, lambda x: torch.special.ndtr(x)) < 1.63 / math.sqrt(z.numel())
    assert float(z.abs().max()) > 4.0


def test_integers_bits_and_bernoulli() -> None:
    s = stream(9, "ints")
    index = torch.arange(33000)
    counts = torch.bincount(s.integers(index, 11).flatten(), minlength=11).double()
    expected = 33000 / 11
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert counts.numel() == 11 and chi2 < 23.2  # chi-square, 10 d.o.f., 1 % level
    # a per-sample upper bound (a tensor that broadcasts over the sample axis)
    high = torch.tensor([1, 2, 3]).repeat(11000)
    draws = s.integers(index, high)
    assert bool((draws >= 0).all()) and bool((draws < high).all())
    assert bool((draws[high == 1] == 0).all())
    with pytest.raises(ValueError, match="at least 1"):
        s.integers(index, 0)
    seeds = s.seeds(index)
    assert int(seeds.min()) >= 0
    words = s.bits(index)
    ones = torch.stack([(words >> k) & 1 for k in range(64)], 1).double().mean(0)
    assert float((ones - 0.5).abs().max()) < 0.015  # every bit, sign bit included, is fair
    hit = s.bernoulli(index, 0.3)
    assert hit.dtype == torch.bool and abs(float(hit.double().mean()) - 0.3) < 0.01


def test_empty_index_and_bad_index() -> None:
    s = Stream(0, "empty")
    empty = torch.zeros(0, dtype=torch.long)
    assert s.normal(empty, (3, 2)).shape == (0, 3, 2)
    assert s.bits(empty).shape == (0,)
    assert s.uniform(torch.arange(4), 0).shape == (4, 0)
    with pytest.raises(ValueError, match="1-D"):
        s.uniform(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="integers"):
        s.uniform(torch.zeros(2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_draws_match_cpu() -> None:
    s = stream(2, "device")
    index = torch.arange(4096)
    on_gpu = index.cuda()
    for name in ("bits", "seeds", "integers", "uniform", "uniform64", "bernoulli"):
        assert torch.equal(DRAWS[name](s, on_gpu).cpu(), DRAWS[name](s, index)), name
    for name in ("normal", "normal64"):  # log/cos/sin: equal to float rounding
        torch.testing.assert_close(DRAWS[name](s, on_gpu).cpu(), DRAWS[name](s, index))
