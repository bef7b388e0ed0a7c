"""What a setting or an option accepts, stated once and checked everywhere it is read.

An :class:`Accepts` describes the values of one setting (an integer in a range, a finite number,
one of some names, non-empty text). The command line uses it as the ``type=`` of the flag
(:class:`ArgType`), so a bad value is refused while the arguments are parsed; ``TrainConfig``
checks the same :data:`robustfusion.training.config.LIMITS` for values read from a config file;
method, encoder and dataset options are checked against their factory's signature with
:func:`option_accepts` (the annotation gives the type, a component's ``option_limits`` the range).
Every refusal is one line, ``NAME accepts WHAT, got VALUE``.
"""

from __future__ import annotations

import argparse
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from robustfusion.errors import ConfigError

#: Largest integer any count or size setting accepts when its own limit gives none.
INT_CAP = 2**31 - 1


@dataclass(frozen=True)
class Accepts:
    """The values of one setting.

    ``kind``: ``int``, ``float`` (finite), ``bool``, ``text`` (non-empty), ``choice`` (one of
    ``choices``) or ``any`` (no check). ``minimum``/``maximum`` bound numbers (``open_minimum``:
    the minimum itself is refused). ``optional``: empty (``None``) is allowed.
    """

    kind: str
    minimum: float | None = None
    maximum: float | None = None
    open_minimum: bool = False
    open_maximum: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False

    def describe(self) -> str:
        """``an integer from 1 to 100000``, ``a finite number > 0 and <= 100`` ..."""
        if self.kind == "int":
            low = "" if self.minimum is None else f"{int(self.minimum)}"
            high = "" if self.maximum is None else f"{int(self.maximum)}"
            text = f"an integer from {low} to {high}" if low and high else "an integer"
            if low and not high:
                text = f"an integer >= {low}"
        elif self.kind == "float":
            bounds = []
            if self.minimum is not None:
                bounds.append(f"{'>' if self.open_minimum else '>='} {self.minimum:g}")
            if self.maximum is not None:
                bounds.append(f"{'<' if self.open_maximum else '<='} {self.maximum:g}")
            text = "a finite number" + (" " + " and ".join(bounds) if bounds else "")
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "choice":
            text = "one of " + ", ".join(self.choices)
        elif self.kind == "text":
            text = "a non-empty text"
        else:
            text = "any value"
        return text + (" (or empty: none)" if self.optional else "")

    # ---------------------------------------------------------------- checking values
    def check(self, value: Any, name: str) -> Any:
        """``value`` if accepted (ints given for a float become floats), else a ConfigError."""
        if value is None:
            if self.optional or self.kind == "any":
                return None
            raise self.refusal(name, None)
        if self.kind == "any":
            return value
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            raise self.refusal(name, value)
        if self.kind in ("int", "float"):
            return self._number(value, name)
        if self.kind == "choice":
            if isinstance(value, str) and value in self.choices:
                return value
            raise self.refusal(name, value)
        if not isinstance(value, str) or not value.strip():
            raise self.refusal(name, value)
        return value

    def _number(self, value: Any, name: str) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.refusal(name, value)
        if self.kind == "int":
            if isinstance(value, float):
                if not value.is_integer():
                    raise self.refusal(name, value)
                value = int(value)
            maximum = INT_CAP if self.maximum is None else self.maximum
        else:
            value = float(value)
            if not math.isfinite(value):
                raise self.refusal(name, value)
            maximum = self.maximum
        low_bad = self.minimum is not None and (
            value <= self.minimum if self.open_minimum else value < self.minimum
        )
        high_bad = maximum is not None and (
            value >= maximum if self.open_maximum else value > maximum
        )
        if low_bad or high_bad:
            raise self.refusal(name, value)
        return value

    def refusal(self, name: str, value: Any) -> ConfigError:
        shown = (
            "nothing" if value is None or (isinstance(value, str) and not value) else repr(value)
        )
        return ConfigError(f"{name} accepts {self.describe()}, got {shown}")

    # ---------------------------------------------------------------- parsing text
    def parse(self, text: str, name: str) -> Any:
        """The value a command-line text means (numbers parsed, empty text refused)."""
        stripped = text.strip()
        if not stripped:
            if self.optional:
                return None
            raise self.refusal(name, "")
        if self.kind == "int":
            try:
                return self.check(int(stripped), name)
            except ValueError:
                try:
                    return self.check(float(stripped), name)
                except ValueError:
                    raise self.refusal(name, text) from None
        if self.kind == "float":
            try:
                return self.check(float(stripped), name)
            except ValueError:
                raise self.refusal(name, text) from None
        if self.kind == "bool":
            lowered = stripped.lower()
            if lowered in ("true", "false"):
                return lowered == "true"
            raise self.refusal(name, text)
        return self.check(stripped, name)


def integer(minimum: int | None = None, maximum: int | None = None) -> Accepts:
    return Accepts("int", minimum, maximum)


def number(
    minimum: float | None = None,
    maximum: float | None = None,
    open_minimum: bool = False,
    open_maximum: bool = False,
) -> Accepts:
    return Accepts("float", minimum, maximum, open_minimum, open_maximum)


def choice(*names: str) -> Accepts:
    return Accepts("choice", choices=tuple(names))


TEXT = Accepts("text")


class ArgType:
    """An ``argparse`` ``type=``: parses one flag's text with its :class:`Accepts`.

    A refusal becomes argparse's ``argument --FLAG: --FLAG accepts ..., got ...``, one line.
    ``items`` parses a comma-separated list whose every item is accepted (none empty).
    """

    def __init__(self, accepts: Accepts, flag: str, items: bool = False) -> None:
        self.accepts = accepts
        self.flag = flag
        self.items = items
        self.__name__ = flag  # argparse names the type in some messages

    def __call__(self, text: str) -> Any:
        try:
            if not self.items:
                return self.accepts.parse(text, self.flag)
            parts = text.split(",")
            if not text.strip() or any(not p.strip() for p in parts):
                raise ConfigError(f"{self.flag} accepts {self.describe()}, got {text!r}")
            values = []
            for part in parts:
                try:
                    values.append(self.accepts.parse(part, self.flag))
                except ConfigError:
                    raise ConfigError(
                        f"{self.flag} accepts {self.describe()}, got {text!r}"
                    ) from None
            return values
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    def describe(self) -> str:
        if self.items and self.accepts.kind == "text":
            return "a comma-separated list of names with no empty item"
        if self.items:
            return f"a comma-separated list with no empty item, each {self.accepts.describe()}"
        return self.accepts.describe()


class PairType:
    """``type=`` of a repeatable ``KEY=VALUE`` (``nested``: ``NAME.KEY=VALUE``) flag: checks the
    form while parsing (the value is checked against the component's signature later)."""

    def __init__(self, flag: str, nested: bool = False) -> None:
        self.flag = flag
        self.nested = nested
        self.__name__ = flag

    def __call__(self, text: str) -> str:
        key, sep, _ = text.partition("=")
        name, dot, option = key.partition(".")
        form = "NAME.KEY=VALUE, e.g. udml.gamma=4" if self.nested else "KEY=VALUE"
        if not sep or not key.strip() or (self.nested and not (dot and name and option)):
            raise argparse.ArgumentTypeError(f"{self.flag} accepts {form}, got {text!r}")
        return text


# -------------------------------------------------------------------- component options
def _from_annotation(hint: Any, default: Any) -> Accepts:
    """The type part of an option's :class:`Accepts`, from its annotation (else its default)."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if typing.get_origin(hint) is typing.Union:
        allowed = typing.get_args(hint)
    optional = type(None) in allowed or default is None
    kinds = {a for a in allowed if a is not type(None)}
    if kinds == {bool}:
        return Accepts("bool", optional=optional)
    if kinds == {int}:
        return Accepts("int", optional=optional)
    if kinds <= {float, int} and float in kinds:
        return Accepts("float", optional=optional)
    if kinds == {str}:
        return Accepts("text", optional=optional)
    if hint is inspect.Parameter.empty and default is not None:
        return _from_annotation(type(default), default)
    return Accepts("any", optional=True)


def option_accepts(factory: Callable[..., Any]) -> dict[str, Accepts]:
    """What each keyword option of a component accepts: the type from the signature's
    annotations, the range from the component's ``option_limits`` (name -> :class:`Accepts`)."""
    try:
        signature = inspect.signature(factory)
        hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
    except (TypeError, ValueError, NameError):  # pragma: no cover - builtins, forward refs
        return {}
    limits: Mapping[str, Accepts] = getattr(factory, "option_limits", {}) or {}
    accepted = {}
    for name, p in signature.parameters.items():
        if p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) or p.default is p.empty:
            continue
        base = _from_annotation(hints.get(name, p.annotation), p.default)
        limit = limits.get(name)
        if limit is not None:
            base = Accepts(
                limit.kind,
                limit.minimum,
                limit.maximum,
                limit.open_minimum,
                limit.open_maximum,
                limit.choices,
                limit.optional or base.optional,
            )
        accepted[name] = base
    return accepted


def check_option_values(
    factory: Callable[..., Any], options: Mapping[str, Any], prefix: str
) -> dict[str, Any]:
    """``options`` with each value checked against :func:`option_accepts` (names are checked by
    :func:`robustfusion.registry.check_options`); ``prefix`` names them, e.g. ``udml.``."""
    accepted = option_accepts(factory)
    checked = dict(options)
    for key, value in options.items():
        spec = accepted.get(key)
        if spec is not None:
            checked[key] = spec.check(value, f"{prefix}{key}")
    return checked
