"""Probabilistic representation heads: a Gaussian ``N(mu, sigma^2)`` per feature (UDML, PE).

UDML (METHODS.md §3, [code] ``models/backbone.py``): ``mu = BN(Conv1x1(f))`` and
``logvar = BN(Conv1x1(f))`` on the last feature map (BatchNorm2d; the LayerNorm variants there are
commented out); for vector features ``Linear + BatchNorm1d`` [ours, following the code];
``z = mu + eps * sigma`` in training and ``z = mu`` in evaluation; a KL regulariser towards
``N(0, v)``.

:class:`StackedProbabilisticHeads` computes the heads of ``M`` modalities with equal vector sizes
in one batched matrix product and one normalisation [ours: the same function as ``M``
:class:`ProbabilisticHead` with ``spatial=False``, for speed].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORMS = ("batch", "layer", "layer_mu")


def _check_norm(name: str, value: str) -> None:
    if value not in NORMS:
        raise ValueError(f"{name} must be one of {', '.join(NORMS)}, got {value!r}")


class ProbabilisticHead(nn.Module):
    """Maps features to ``(mu, logvar)`` of the same layout.

    Args:
        in_dim_or_channels: channels ``C`` of a map ``[B, C, h, w]`` (``spatial=True``) or the
            size ``D`` of a vector ``[B, D]``.
        out_dim: channels (or size) of ``mu`` and ``logvar``.
        spatial: ``True`` for maps (1x1 convolution + normalisation), ``False`` for vectors
            (Linear + normalisation).
        vector_norm: normalisation of the vector branches: ``"layer"`` (LayerNorm) or ``"batch"``
            (BatchNorm1d, as the authors' BatchNorm2d on maps: LayerNorm removes each sample's
            overall scale of ``logvar``, so ``sigma`` cannot grow uniformly with a sample's noise).
        map_norm: normalisation of the map branches: ``"batch"`` (BatchNorm2d, [code]) or
            ``"layer"`` (GroupNorm with one group: LayerNorm over ``(C, h, w)`` with a per-channel
            affine, the code's commented-out variant).
    """

    def __init__(
        self,
        in_dim_or_channels: int,
        out_dim: int,
        spatial: bool,
        vector_norm: str = "layer",
        map_norm: str = "batch",
    ) -> None:
        super().__init__()
        _check_norm("vector_norm", vector_norm)
        _check_norm("map_norm", map_norm)
        self.spatial = spatial
        self.out_dim = out_dim
        if spatial:

            def norm() -> nn.Module:
                if map_norm == "batch":
                    return nn.BatchNorm2d(out_dim)
                return nn.GroupNorm(1, out_dim)

            self.mu: nn.Module = nn.Sequential(
                nn.Conv2d(in_dim_or_channels, out_dim, kernel_size=1), norm()
            )
            self.logvar: nn.Module = nn.Sequential(
                nn.Conv2d(in_dim_or_channels, out_dim, kernel_size=1), norm()
            )
        else:
            mu_norm = nn.BatchNorm1d if vector_norm == "batch" else nn.LayerNorm
            logvar_norm = nn.LayerNorm if vector_norm == "layer" else nn.BatchNorm1d
            self.mu = nn.Sequential(nn.Linear(in_dim_or_channels, out_dim), mu_norm(out_dim))
            self.logvar = nn.Sequential(
                nn.Linear(in_dim_or_channels, out_dim), logvar_norm(out_dim)
            )

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        expected = 4 if self.spatial else 2
        if features.dim() != expected:
            kind = "a map [B, C, h, w]" if self.spatial else "a vector [B, D]"
            raise ValueError(
                f"ProbabilisticHead(spatial={self.spatial}) expects {kind}, "
                f"got shape {tuple(features.shape)}"
            )
        return self.mu(features), self.logvar(features)


class StackedProbabilisticHeads(nn.Module):
    """``M`` vector heads ``(mu, logvar) = (N(x W_mu + b), N(x W_lv + b))`` in one batched pass.

    Input ``[M, B, in_dim]`` (modality ``j`` in row ``j``), output two ``[M, B, out_dim]``
    tensors. ``norm="batch"``: BatchNorm over the batch per (modality, branch, feature), exactly
    ``M`` separate BatchNorm1d; ``"layer"``: LayerNorm over the features of each (modality,
    branch); ``"layer_mu"``: LayerNorm on ``mu`` and BatchNorm on ``logvar`` [ours], so that ``mu``
    is normalised per sample while ``logvar`` keeps each sample's overall scale. Parameters are initialised as ``nn.Linear`` / the norms are.
    """

    def __init__(self, count: int, in_dim: int, out_dim: int, norm: str = "batch") -> None:
        super().__init__()
        _check_norm("norm", norm)
        self.count, self.in_dim, self.out_dim, self.norm_kind = count, in_dim, out_dim, norm
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(count, in_dim, 2 * out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(count, 1, 2 * out_dim).uniform_(-bound, bound))
        if norm == "batch":
            self.norm: nn.Module = nn.BatchNorm1d(count * 2 * out_dim)
        elif norm == "layer_mu":
            self.norm = nn.BatchNorm1d(count * out_dim)
            self.norm_weight = nn.Parameter(torch.ones(count, 1, out_dim))
            self.norm_bias = nn.Parameter(torch.zeros(count, 1, out_dim))
        else:
            self.norm_weight = nn.Parameter(torch.ones(count, 1, 2, out_dim))
            self.norm_bias = nn.Parameter(torch.zeros(count, 1, 2, out_dim))

    def _normalise(self, h: Tensor) -> Tensor:
        count, batch = h.shape[0], h.shape[1]
        if self.norm_kind == "batch":
            flat = h.permute(1, 0, 2).reshape(batch, count * 2 * self.out_dim)
            return self.norm(flat).reshape(batch, count, 2 * self.out_dim).permute(1, 0, 2)
        if self.norm_kind == "layer_mu":
            d = self.out_dim
            mu = F.layer_norm(h[..., :d], (d,)) * self.norm_weight + self.norm_bias
            flat = h[..., d:].permute(1, 0, 2).reshape(batch, count * d)
            logvar = self.norm(flat).reshape(batch, count, d).permute(1, 0, 2)
            return torch.cat([mu, logvar], dim=2)
        split = h.reshape(count, batch, 2, self.out_dim)
        normed = F.layer_norm(split, (self.out_dim,))
        return (normed * self.norm_weight + self.norm_bias).reshape(count, batch, -1)

    def forward(self, features: Tensor, detach_logvar_input: bool = False) -> tuple[Tensor, Tensor]:
        """``features`` ``[M, B, in_dim]`` -> ``(mu, logvar)``, each ``[M, B, out_dim]``.

        ``detach_logvar_input=True`` feeds the logvar branch detached features (UDML's learned
        sigma proxy when the representation is deterministic).
        """
        if (
            features.dim() != 3
            or features.shape[0] != self.count
            or features.shape[2] != self.in_dim
        ):
            raise ValueError(
                f"StackedProbabilisticHeads expects [{self.count}, B, {self.in_dim}], "
                f"got shape {tuple(features.shape)}"
            )
        if detach_logvar_input:
            d = self.out_dim
            mu = torch.baddbmm(self.bias[..., :d], features, self.weight[..., :d])
            logvar = torch.baddbmm(self.bias[..., d:], features.detach(), self.weight[..., d:])
            h = torch.cat([mu, logvar], dim=2)
        else:
            h = torch.baddbmm(self.bias, features, self.weight)
        h = self._normalise(h)
        # Contiguous halves: a strided view would make every later op (and randn_like) slower.
        mu, logvar = h.split(self.out_dim, dim=2)
        return mu.contiguous(), logvar.contiguous()


def reparameterise(mu: Tensor, logvar: Tensor, training: bool) -> Tensor:
    """``z = mu + eps * exp(0.5 * logvar)`` with ``eps ~ N(0, I)`` in training; ``mu`` otherwise."""
    if not training:
        return mu
    eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device)  # contiguous: fast path
    return mu + eps * torch.exp(0.5 * logvar)


def kl_sufficient_statistics(
    mu: Tensor, logvar: Tensor, std: Tensor | None = None, row_dims: int = 1
) -> Tensor:
    """``[*rows, 2]``: ``S_1 = sum logvar`` and ``S_2 = sum (sigma^2 + mu^2)`` over the feature
    axes, i.e. every axis after the first ``row_dims`` (``[B, ...]`` -> ``[B, 2]`` with
    ``row_dims=1``; a stack ``[M, B, D]`` -> ``[M, B, 2]`` with ``row_dims=2``).

    With ``n`` features, ``KL(N(mu, sigma^2) || N(0, v)) = 0.5 (n (log v - 1) - S_1 + S_2 / v)``
    (:func:`kl_from_statistics`): the per-element work does not depend on ``v``, so it runs once
    per forward pass, batched over modalities [ours, for speed; the same value as
    :func:`gaussian_kl_rows`]. ``std`` (``exp(0.5 logvar)``) is reused when given.
    """
    variance = logvar.exp() if std is None else std * std
    second = (variance + mu * mu).flatten(row_dims).sum(dim=-1)
    return torch.stack([logvar.flatten(row_dims).sum(dim=-1), second], dim=-1)


def kl_from_statistics(stats: Tensor, size: int | Tensor, prior_var: Tensor) -> Tensor:
    """Per-row KL from :func:`kl_sufficient_statistics` ``[..., 2]``, ``size`` features per row
    and the prior variance ``v`` ``[...]``."""
    v = prior_var.to(stats.dtype)
    return 0.5 * (size * (torch.log(v) - 1.0) - stats[..., 0] + stats[..., 1] / v)


def gaussian_kl_rows(mu: Tensor, logvar: Tensor, prior_var: Tensor) -> Tensor:
    """``KL(N(mu, sigma^2) || N(0, v))`` summed over the trailing feature axes, one value per row.

    ``mu``/``logvar`` ``[*rows, *features]`` and ``prior_var`` ``[*rows]``; e.g. ``[B, D]`` with
    ``[B]``, or a stack ``[M, B, D]`` with ``[M, B]``.
    """
    v = prior_var.to(mu.dtype)
    features = mu.dim() - v.dim()
    v_b = v.reshape(*v.shape, *([1] * features))
    kl = 0.5 * (torch.log(v_b) - logvar + (logvar.exp() + mu.pow(2)) / v_b - 1.0)
    return kl.flatten(v.dim()).sum(dim=-1)


def gaussian_kl(mu: Tensor, logvar: Tensor, prior_var: float | Tensor = 1.0) -> Tensor:
    """``KL(N(mu, sigma^2) || N(0, v))`` per element, summed over features, mean over the batch.

    ``KL = 0.5 * (log v - logvar + (sigma^2 + mu^2) / v - 1)``. ``prior_var`` is a scalar or a
    per-sample ``[B]`` tensor (UDML's injected noise level ``v``), broadcast over features.
    """
    if not isinstance(prior_var, Tensor):
        if prior_var <= 0:
            raise ValueError(f"prior variance must be positive, got {prior_var}")
        prior_var = torch.full((mu.shape[0],), float(prior_var), dtype=mu.dtype, device=mu.device)
    return gaussian_kl_rows(mu, logvar, prior_var.reshape(-1)).mean()
