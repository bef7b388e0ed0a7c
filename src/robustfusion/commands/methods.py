"""``robustfusion methods [NAME]``: the registered fusion methods, or one method's options."""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from typing import Any

from robustfusion.accepts import TEXT, ArgType
from robustfusion.registry import METHODS
from robustfusion.training.config import RECIPE_SETTINGS, default_value

NAME = "methods"
HELP = "list the fusion methods one per line, or show one method's options and recipe"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name",
        nargs="?",
        type=ArgType(TEXT, "NAME"),
        metavar="NAME",
        help="a method: print its options with their defaults, the paper it follows and the "
        "training settings its recipe implies (default: list every method)",
    )


def reference(factory: Any) -> str:
    """The paper or idea a method follows: its ``paper`` attribute, else the first line of its
    module's docstring."""
    paper = getattr(factory, "paper", None)
    if paper:
        return str(paper)
    module = sys.modules.get(getattr(factory, "__module__", ""), None)
    doc = inspect.getdoc(module) if module is not None else None
    first = doc.strip().splitlines()[0] if doc else ""
    # docstrings cite the project's method reference by its section: name the file a user has
    return re.sub(r"(?<![\w/-])METHODS\.md", "docs/method-reference.md", first)


def presets(factory: Any) -> dict[str, dict[str, Any]]:
    """A method's presets (``PRESETS`` of its module: preset name -> option values), if any."""
    module = sys.modules.get(getattr(factory, "__module__", ""), None)
    table = getattr(module, "PRESETS", None)
    return dict(table) if isinstance(table, dict) else {}


def options(factory: Any) -> list[tuple[str, str]]:
    """``(name, default)`` of a method's keyword options (the spec and ``inner`` left out); an
    option left to the preset shows the default preset's value."""
    rows = []
    parameters = list(inspect.signature(factory).parameters.values())[1:]  # after the spec
    preset_default = next((p.default for p in parameters if p.name == "preset"), None)
    implied = presets(factory).get(preset_default, {}) if preset_default else {}
    for p in parameters:
        if p.name == "inner" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            value = "required"
        elif p.default is None and p.name in implied:
            value = f"{implied[p.name]!r}  (from preset {preset_default!r})"
        else:
            value = repr(p.default)
        rows.append((p.name, value))
    return rows


def preset_lines(factory: Any) -> list[str]:
    """One line per preset: the option values it implies."""
    table = presets(factory)
    if not table:
        return []
    lines = ["presets (preset=NAME; an option given explicitly wins):"]
    for name, values in table.items():
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        lines.append(f"  {name}: {shown}")
    return lines


def describe(name: str) -> list[str]:
    """The lines ``robustfusion methods NAME`` prints."""
    from robustfusion.methods.base import method_facts
    from robustfusion.training.config import TrainConfig

    factory = METHODS.get(name)
    entry = next(e for e in METHODS if e.name == name)
    lines = [f"{name}: {entry.description}"]
    ref = reference(factory)
    if ref:
        lines.append(f"follows: {ref}")
    facts = method_facts(name)
    lines.append(f"tasks: {', '.join(facts.tasks)} (features: {', '.join(facts.feature_kinds)})")
    rows = options(factory)
    if rows:
        lines.append(f"options (--method-option {name}.KEY=VALUE):")
        width = max(len(key) for key, _ in rows)
        lines += [f"  {key:<{width}}  {value}" for key, value in rows]
    else:
        lines.append("options: none")
    lines += preset_lines(factory)
    if getattr(factory, "composable", False):
        lines.append(f"wraps another method: {name}+NAME (alone it wraps static)")
    if getattr(factory, "has_dynamic_weights", False):
        lines.append(
            "per-sample modality weights: yes (option weights=uniform trains its uniform twin; "
            "evaluate --weights learned|uniform|oracle)"
        )
    recipe = TrainConfig(method=name).recipe()
    keys = list(RECIPE_SETTINGS) + [k for k in recipe if k not in RECIPE_SETTINGS]
    lines.append(
        "training settings with the default options (flags and --config override them; "
        "'robustfusion train ... --print-config' shows them for given options):"
    )
    width = max(len(k) for k in keys)
    for key in keys:
        source = "method's recipe" if key in recipe else "global default"
        value = recipe[key] if key in recipe else default_value(key)
        lines.append(f"  {key:<{width}}  {'none' if value is None else value}  ({source})")
    return lines


def run(args: argparse.Namespace) -> int:
    if args.name is None:
        print("\n".join(METHODS.listing()))
        return 0
    blocks = ["\n".join(describe(part)) for part in args.name.split("+")]
    print("\n\n".join(blocks))
    return 0
