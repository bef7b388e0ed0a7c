"""Option values written as text (command-line ``KEY=VALUE``, benchmark method labels)."""

from __future__ import annotations

from typing import Any

import yaml

from robustfusion.errors import ConfigError


def parse_value(text: str) -> Any:
    """A YAML scalar or collection (``4`` -> int, ``1e-3`` -> float, ``[a, b]`` -> list)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"cannot parse option value {text!r} as YAML: quote it") from error
    if isinstance(value, str):
        try:
            return float(value) if any(c in value.lower() for c in ".e") else value
        except ValueError:
            return value
    return value
