"""Encoder construction, and the split of an encoder into stages."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from robustfusion.errors import ConfigError
from robustfusion.registry import ENCODERS


def default_encoder_name(input_shape: tuple[int, ...]) -> str:
    """``mlp`` for vectors ``(D,)``; ``cnn`` for maps ``(H, W)`` or ``(C, H, W)``."""
    if len(input_shape) == 1:
        return "mlp"
    if len(input_shape) in (2, 3):
        return "cnn"
    raise ConfigError(
        f"no default encoder for per-sample input shape {tuple(input_shape)}: use vectors (D,), "
        "maps (H, W) or (C, H, W), or name an encoder in the config"
    )


def build_encoder(
    name: str | None, input_shape: tuple[int, ...], out_dim: int = 128, spatial: bool = False
) -> nn.Module:
    """Build encoder ``name`` (or the default for the shape) for per-sample ``input_shape``.

    The result has attributes ``out_dim`` (feature size) and ``spatial``; it returns ``[B, out_dim]``
    or, when ``spatial`` and the encoder is convolutional, ``[B, out_dim, h, w]``.
    """
    name = name or default_encoder_name(tuple(input_shape))
    return ENCODERS.get(name)(tuple(input_shape), out_dim=out_dim, spatial=spatial)


def channels_of(input_shape: tuple[int, ...]) -> int:
    """Number of input channels of a 2-D map: 1 for ``(H, W)``, ``C`` for ``(C, H, W)``."""
    if len(input_shape) == 2:
        return 1
    if len(input_shape) == 3:
        return input_shape[0]
    raise ConfigError(
        f"a convolutional encoder needs (H, W) or (C, H, W) inputs, got {tuple(input_shape)}"
    )


#: One stage of an encoder: a callable from the previous stage's output to the next.
Stage = Callable[[Tensor], Tensor]


def encoder_stages(encoder: nn.Module) -> list[Stage]:
    """The encoder as a sequence of stages (its ``split()`` method), for methods that run part
    of it themselves (DMS's MC dropout over the encoder's top or over all of it).

    Composing the stages gives the encoder's vector output (``spatial=False``) in every mode:
    ``stages[-1](...stages[0](x))`` equals ``encoder(x)``. The last stage is the encoder's *top*
    (its last parametric block, with the pooling after it), the others its *trunk*.
    """
    split = getattr(encoder, "split", None)
    if not callable(split):
        raise ConfigError(
            f"encoder {type(encoder).__name__} does not define split(), which this option needs "
            "(DMS mc_scope=encoder_top|encoder): use an mlp, cnn or resnet18 encoder, or "
            "mc_scope=head"
        )
    result = list(split())
    if not result:
        raise ConfigError(f"encoder {type(encoder).__name__}.split() returned no stage")
    return result
