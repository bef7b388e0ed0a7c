"""Parsing of repeatable ``KEY=VALUE`` command-line options (values parsed as YAML)."""

from __future__ import annotations

from typing import Any

from robustfusion.errors import ConfigError
from robustfusion.options import parse_value


def parse_pair(text: str, flag: str, form: str) -> tuple[str, str]:
    """Split ``KEY=VALUE`` (the value kept as text)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{flag} expects {form}, got {text!r}")
    return key.strip(), value


def nested_options(items: list[str] | None, flag: str) -> dict[str, dict[str, Any]] | None:
    """``["udml.gamma=4", ...]`` -> ``{"udml": {"gamma": 4}}`` (``None`` when no item)."""
    if not items:
        return None
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        key, value = parse_pair(item, flag, "NAME.KEY=VALUE, e.g. udml.gamma=4")
        name, dot, option = key.partition(".")
        if not dot or not name or not option:
            raise ConfigError(f"{flag} expects NAME.KEY=VALUE, e.g. udml.gamma=4, got {item!r}")
        options.setdefault(name, {})[option] = parse_value(value)
    return options


def flat_options(items: list[str] | None, flag: str, parse: bool = True) -> dict[str, Any] | None:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (``None`` when no item)."""
    if not items:
        return None
    options: dict[str, Any] = {}
    for item in items:
        key, value = parse_pair(item, flag, "KEY=VALUE")
        options[key] = parse_value(value) if parse else value
    return options
