"""The generated mistake suite: every value-taking flag of every command, and every option of every
registered method and encoder, fed values of the wrong type, out of range (negative, zero, huge,
NaN, infinite) and empty. Each must exit 2 with one line that names the setting and says what it
accepts, and write nothing. The cases come from the one definition of each flag (its ``type=``, an
:class:`~robustfusion.accepts.ArgType`) and of each option (the factory's signature and its
``option_limits``), so a new flag or option is covered without anyone writing a test.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from robustfusion.accepts import INT_CAP, Accepts, ArgType, PairType, option_accepts
from robustfusion.cli import build_parser, main
from robustfusion.commands._settings import DevicesType
from robustfusion.registry import ENCODERS, METHODS


def bad_texts(accepts: Accepts) -> list[tuple[str, str]]:
    """``(what, text)`` pairs that ``accepts`` must refuse."""
    cases: list[tuple[str, str]] = []
    if not accepts.optional:
        cases.append(("empty", ""))
    if accepts.kind in ("int", "float"):
        cases.append(("wrong type", "abc"))
        low, high = accepts.minimum, accepts.maximum
        if low is not None:
            below = low if accepts.open_minimum else low - 1
            cases.append(
                ("below the minimum", f"{below:g}" if accepts.kind == "float" else str(int(below)))
            )
        if accepts.kind == "int":
            cases.append(("not whole", "1.5"))
            top = INT_CAP if high is None else high
            cases.append(("huge", str(int(top) + 1)))
        else:
            cases += [("NaN", "nan"), ("infinite", "inf")]
            if high is not None:
                cases.append(("huge", f"{high * 10 + 1:g}"))
    elif accepts.kind == "choice":
        cases.append(("unknown name", "bogus-name"))
    elif accepts.kind == "bool":
        cases.append(("wrong type", "maybe"))
    return cases


def option_bad_texts(accepts: Accepts) -> list[tuple[str, str]]:
    """As :func:`bad_texts`, written as YAML option values (``udml.gamma=VALUE``)."""
    cases = [(what, text) for what, text in bad_texts(accepts) if text not in ("nan", "inf")]
    if accepts.kind == "float":
        cases += [("NaN", ".nan"), ("infinite", ".inf")]
    if accepts.kind in ("text", "choice"):
        cases.append(("wrong type", "3"))
    if accepts.kind == "bool":
        cases.append(("wrong type", "3"))
    return cases


# ------------------------------------------------------------------------- every command flag
def value_actions() -> Iterator[tuple[str, argparse.Action]]:
    """``(command, action)`` of every flag or positional argument that takes a value."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, command_parser in sorted(sub.choices.items()):
        for action in command_parser._actions:
            if action.nargs == 0 or isinstance(action, argparse._HelpAction):
                continue
            yield command, action


def _name(action: argparse.Action) -> str:
    return action.option_strings[-1] if action.option_strings else str(action.metavar)


def flag_cases() -> list[tuple[str, str, str, str]]:
    cases = []
    for command, action in value_actions():
        kind = action.type
        name = _name(action)
        if isinstance(kind, DevicesType):
            texts = [("zero", "0"), ("negative", "-1"), ("wrong type", "abc"), ("empty", ""),
                     ("huge", "1025")]  # fmt: skip
        elif isinstance(kind, ArgType):
            texts = bad_texts(kind.accepts)
            if kind.items:
                texts = [(w, t) for w, t in texts if t != ""] + [
                    ("empty item", "a,,b"),
                    ("empty", ""),
                ]
                if kind.accepts.kind in ("int", "float"):
                    texts.append(("bad item", "1,abc"))
        elif isinstance(kind, PairType):
            texts = [("no value", "novalue"), ("empty", ""), ("no key", "=3")]
            if kind.nested:
                texts.append(("no name", "gamma=3"))
        else:  # caught by test_every_flag_declares_what_it_accepts
            continue
        cases += [(command, name, what, text) for what, text in texts]
    return cases


FLAG_CASES = flag_cases()


def test_every_flag_declares_what_it_accepts() -> None:
    undeclared = [
        f"{command} {_name(action)}"
        for command, action in value_actions()
        if not isinstance(action.type, ArgType | PairType)
    ]
    assert not undeclared, f"give these flags an ArgType or PairType: {undeclared}"


@pytest.mark.parametrize(
    ("command", "flag", "what", "text"),
    FLAG_CASES,
    ids=[f"{c}-{f}-{w}" for c, f, w, _ in FLAG_CASES],
)
def test_bad_flag_value_exits_2_naming_the_flag(
    command: str,
    flag: str,
    what: str,
    text: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [command, text] if not flag.startswith("-") else [command, flag, text]
    status = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert flag in err[0] and "accepts" in err[0], err[0]
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ every component option
@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("generated")
    rng = np.random.default_rng(0)
    y = np.arange(30) % 3
    np.savez(folder / "tiny.npz", y=y, a=rng.normal(size=(30, 4)), b=rng.normal(size=(30, 3)))
    return folder / "tiny.npz"


def option_cases() -> list[tuple[str, str, str, str, str]]:
    """``(kind, component, option, what, text)`` for every method and encoder option."""
    cases = []
    for kind, registry in (("method", METHODS), ("encoder", ENCODERS)):
        for entry in registry:
            for option, accepts in option_accepts(entry.factory).items():
                if option == "inner" or accepts.kind == "any":
                    continue
                cases += [
                    (kind, entry.name, option, what, text)
                    for what, text in option_bad_texts(accepts)
                ]
    return cases


OPTION_CASES = option_cases()


def test_every_numeric_method_option_has_a_range() -> None:
    """A numeric option without ``option_limits`` is only checked for its type: say its range."""
    missing = [
        f"{entry.name}.{option}"
        for entry in METHODS
        for option, accepts in option_accepts(entry.factory).items()
        if accepts.kind in ("int", "float") and accepts.minimum is None and accepts.maximum is None
    ]
    assert not missing, f"declare these in the method's option_limits: {missing}"


@pytest.mark.parametrize(
    ("kind", "component", "option", "what", "text"),
    OPTION_CASES,
    ids=[f"{k}-{c}.{o}-{w}" for k, c, o, w, _ in OPTION_CASES],
)
def test_bad_option_value_exits_2_naming_the_option(
    kind: str,
    component: str,
    option: str,
    what: str,
    text: str,
    tiny: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    if kind == "method":
        extra = ["--method", component, "--method-option", f"{component}.{option}={text}"]
    else:
        extra = ["--encoder-option", f"{component}.{option}={text}"]
    status = main(["train", "--data", str(tiny), "--out", str(out), "--print-config", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2, (err, text)
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert f"{component}.{option}" in err[0] and "accepts" in err[0], err[0]
    assert not out.exists()


@pytest.mark.parametrize("label", ["udml:gamma=abc", "dms:T=1", "qmf:temperature=.nan"])
def test_benchmark_refuses_bad_label_options_before_writing(
    label: str, tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench"
    status = main(["benchmark", "--data", str(tiny), "--methods", label, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "accepts" in err[0], err
    assert not out.exists()


def test_the_generated_suite_is_large() -> None:
    """The count the issue asks for: every (setting x bad value) case above."""
    count = len(FLAG_CASES) + len(OPTION_CASES)
    print(f"generated mistake cases: {len(FLAG_CASES)} flags + {len(OPTION_CASES)} options")
    assert len(FLAG_CASES) >= 150 and len(OPTION_CASES) >= 150, count
