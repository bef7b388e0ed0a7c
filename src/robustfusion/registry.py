"""Name -> factory registries for methods, encoders, fusion heads, datasets and corruptions.

Adding a component is adding one file that calls ``REGISTRY.register(name, description)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from robustfusion.errors import UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: T
    description: str
    #: What the rest of the library needs to know about the component, kept with its
    #: registration (e.g. a corruption's :class:`~robustfusion.data.corruptions.base.CorruptionFacts`).
    facts: Any = None


class Registry(Generic[T]):
    """A named collection of factories, with helpful errors for unknown names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, description: str, facts: Any = None) -> Callable[[T], T]:
        """Decorator registering ``factory`` under ``name`` with a one-line description and the
        facts other modules read about it (see :attr:`Entry.facts`)."""

        def decorator(factory: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, factory, description, facts)
            return factory

        return decorator

    def get(self, name: str) -> T:
        """Return the factory registered as ``name`` or raise :class:`UnknownNameError`."""
        self._load_builtins()
        if name not in self._entries:
            close = difflib.get_close_matches(name, list(self._entries), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}: {hint}choose one of {', '.join(sorted(self._entries))}"
            )
        return self._entries[name].factory

    def description(self, name: str) -> str:
        """The one-line description registered with ``name`` (unknown names raise as :meth:`get`)."""
        self.get(name)
        return self._entries[name].description

    def facts(self, name: str) -> Any:
        """The facts registered with ``name`` (unknown names raise as :meth:`get` does)."""
        self.get(name)
        return self._entries[name].facts

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        self._load_builtins()
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        return [entry.name for entry in self]

    def listing(self) -> list[str]:
        """One line per entry, ``name  description``, names padded to one column."""
        entries = list(self)
        width = max((len(e.name) for e in entries), default=0)
        return [f"{entry.name:<{width}}  {entry.description}" for entry in entries]

    def _load_builtins(self) -> None:
        """Import the package that registers the built-in entries of this kind (once)."""
        module = _BUILTIN_MODULES.get(self.kind)
        if module is not None:
            import importlib

            importlib.import_module(module)


_BUILTIN_MODULES: dict[str, str] = {
    "method": "robustfusion.methods",
    "encoder": "robustfusion.encoders",
    "fusion": "robustfusion.modules.fusion",
    "dataset": "robustfusion.data.datasets",
    "corruption": "robustfusion.data.corruptions",
    "prepare step": "robustfusion.data.prepare",
    "task": "robustfusion.tasks",
}

METHODS: Registry = Registry("method")
ENCODERS: Registry = Registry("encoder")
FUSIONS: Registry = Registry("fusion")
DATASETS: Registry = Registry("dataset")
CORRUPTIONS: Registry = Registry("corruption")
#: Tasks (``classification``, ``segmentation``): registered *instances* of
#: :class:`robustfusion.tasks.base.Task`; ``TASKS.get(name)`` returns the task itself.
TASKS: Registry = Registry("task")
#: ``prepare`` steps: name -> ``fn(raw: Path | None, out: Path | None, **options) -> Path`` (the
#: prepared folder); one module per dataset in ``data/prepare/``.
PREPARERS: Registry = Registry("prepare step")


def check_options(factory: Callable[..., object], options: dict, what: str, *args: object) -> None:
    """Raise a one-line ``ConfigError`` when ``factory(*args, **options)`` would not bind.

    Checked against the signature before the call, so that a ``TypeError`` raised *inside* a
    component is a bug that surfaces as one, not a user error in disguise.
    """
    import inspect

    from robustfusion.errors import ConfigError

    try:
        inspect.signature(factory).bind(*args, **options)
    except TypeError as error:
        try:
            accepted = [
                name
                for name, p in inspect.signature(factory).parameters.items()
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
            ][len(args) :]
        except (TypeError, ValueError):  # pragma: no cover - builtins without signatures
            accepted = []
        known = f" (it accepts {', '.join(accepted)})" if accepted else ""
        raise ConfigError(f"bad options for {what}: {error}{known}") from None
