"""A seeded, class-stratified hold-out split (validation taken from train, never from test)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robustfusion.errors import ConfigError


def stratified_holdout(
    labels: Sequence[int], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Split positions ``0..N-1`` into ``(keep, held_out)`` with about ``fraction`` of every class
    held out (largest remainders, so the total is ``round(fraction * N)``; at least one sample
    when ``fraction > 0`` and ``N >= 2``). Both lists are sorted; equal seeds give equal splits.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"validation fraction must be in [0, 1), got {fraction}")
    y = np.asarray(labels, dtype=np.int64)
    n = int(y.size)
    if fraction == 0.0 or n < 2:
        return list(range(n)), []
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    quotas = {int(c): fraction * int((y == c).sum()) for c in classes}
    take = {c: int(np.floor(q)) for c, q in quotas.items()}
    total = max(1, int(round(fraction * n)))
    # Hand the remaining places to the classes with the largest remainders (ties: class order).
    order = sorted(quotas, key=lambda c: (-(quotas[c] - take[c]), c))
    for c in order:
        if sum(take.values()) >= total:
            break
        if take[c] < int((y == c).sum()) - 1:
            take[c] += 1
    held: list[int] = []
    for c in classes:
        members = np.flatnonzero(y == c)
        rng.shuffle(members)
        held.extend(int(i) for i in members[: take[int(c)]])
    held_set = set(held)
    return [i for i in range(n) if i not in held_set], sorted(held)
