"""Method labels of the benchmark: a registered method, its options, and its uniform twin.

A label is ``NAME[:KEY=VALUE[:KEY=VALUE ...]][~uniform]``:

* ``NAME`` is a registered method or a composition ``outer+inner`` (``mwam+modality_dropout``);
* ``KEY`` is an option of the outer method (``udml:preset=paper``) or ``part.option`` for any part
  of a composition (``mwam+udml:udml.gamma=4``); values are parsed as YAML;
* ``~uniform`` is the *uniform twin*: the same method and training with its per-sample weights
  fixed uniform (the ``weights=uniform`` option of the part that has dynamic weights).

Labels name the rows of ``results.csv`` and, made safe for file names, the run folders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from robustfusion.errors import ConfigError
from robustfusion.options import parse_value

TWIN_SUFFIX = "~uniform"


@dataclass(frozen=True)
class MethodVariant:
    """A parsed label: ``name`` to build, ``options`` per method part, and the twin flag."""

    label: str
    name: str
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    twin: bool = False

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.name.split("+"))

    @property
    def base_label(self) -> str:
        """The label without ``~uniform`` (the method a twin is the twin of)."""
        return self.label.removesuffix(TWIN_SUFFIX)

    def method_options(self) -> dict[str, dict[str, Any]]:
        """``TrainConfig.method_options`` for this variant (with ``weights: uniform`` for a twin)."""
        options = {part: dict(values) for part, values in self.options.items()}
        if self.twin:
            for part in dynamic_parts(self.name):
                options.setdefault(part, {})["weights"] = "uniform"
        return options

    def folder_name(self) -> str:
        """The label made safe as a folder name (``udml:preset=paper`` -> ``udml_preset-paper``)."""
        return re.sub(r"[^A-Za-z0-9+~._-]", "_", self.label.replace("=", "-").replace(":", "_"))


def dynamic_parts(name: str) -> list[str]:
    """The parts of a (composed) method that fuse with per-sample weights."""
    from robustfusion.registry import METHODS

    return [
        part for part in name.split("+") if getattr(METHODS.get(part), "has_dynamic_weights", False)
    ]


def parse_variant(label: str) -> MethodVariant:
    """Parse a benchmark method label (see the module docstring); unknown names exit 2."""
    from robustfusion.registry import METHODS

    text = label.strip()
    twin = text.endswith(TWIN_SUFFIX)
    if twin:
        text = text.removesuffix(TWIN_SUFFIX)
    if "~" in text:
        raise ConfigError(
            f"method label {label!r}: only the suffix ~uniform is known (the uniform twin)"
        )
    name, *pairs = text.split(":")
    parts = name.split("+")
    for part in parts:
        METHODS.get(part)  # unknown names raise a one-line UnknownNameError
    options: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"method label {label!r}: options are KEY=VALUE after ':', e.g. udml:preset=paper"
            )
        part, dot, option = key.rpartition(".")
        part = part if dot else parts[0]
        if part not in parts:
            raise ConfigError(
                f"method label {label!r}: {part!r} is not part of {name!r}; "
                f"use one of {', '.join(parts)} before the dot"
            )
        options.setdefault(part, {})[option] = parse_value(value)
    if twin and not dynamic_parts(name):
        raise ConfigError(
            f"method label {label!r}: {name} has no per-sample weights, so it has no uniform twin"
        )
    return MethodVariant(label=label.strip(), name=name, options=options, twin=twin)


def twin_of(variant: MethodVariant) -> MethodVariant | None:
    """The uniform twin of ``variant`` (``None`` if it is one, or has no dynamic weights)."""
    if variant.twin or not dynamic_parts(variant.name):
        return None
    return parse_variant(variant.label + TWIN_SUFFIX)
