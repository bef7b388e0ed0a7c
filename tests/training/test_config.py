from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method
from robustfusion.registry import METHODS, Entry
from robustfusion.training.config import TrainConfig


def test_yaml_round_trip_keeps_every_setting(tmp_path: Path) -> None:
    config = TrainConfig(
        dataset="mfeat",
        method="udml",
        method_options={"udml": {"gamma": 4.0, "ablation": "no_dependency"}},
        encoders={"fou": "mlp"},
        lr=3e-4,
        devices="auto",
        gradient_clip_val=1.0,
        out=str(tmp_path / "run"),
    )
    config.to_yaml(tmp_path / "c.yaml")
    assert TrainConfig.from_yaml(tmp_path / "c.yaml") == config
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file


def test_yaml_strings_such_as_1e_3_become_floats() -> None:
    config = TrainConfig.from_dict({"lr": "1e-3", "weight_decay": 0, "epochs": 5})
    assert config.lr == 1e-3 and isinstance(config.weight_decay, float) and config.epochs == 5


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"learning_rate": 0.1}, "unknown setting(s) learning_rate"),
        ({"epochs": "ten"}, "'epochs'"),
        ({"epochs": True}, "'epochs'"),
        ({"method": None}, "cannot be empty"),
        ({"method_options": [1, 2]}, "'method_options'"),
    ],
)
def test_bad_settings_raise_config_error(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        TrainConfig.from_dict(data)
    assert needle in str(info.value)


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_yaml(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("epochs: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TrainConfig.from_yaml(tmp_path / "bad.yaml")


def test_overrides_ignore_unset_flags_and_merge_options() -> None:
    base = TrainConfig(
        dataset="mfeat", epochs=7, method_options={"udml": {"gamma": 4.0, "beta": 1.0}}
    )
    merged = base.with_overrides(
        epochs=None, lr=0.01, method_options={"udml": {"gamma": 2.0}}, encoders={"fou": "mlp"}
    )
    assert merged.epochs == 7 and merged.lr == 0.01
    assert merged.method_options == {"udml": {"gamma": 2.0, "beta": 1.0}}
    assert merged.encoders == {"fou": "mlp"}
    assert base.method_options["udml"]["gamma"] == 4.0  # the base is unchanged


def test_resolved_checks_values_and_makes_paths_absolute(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of --dataset"):
        TrainConfig(out="x").resolved()
    with pytest.raises(ConfigError, match="exactly one of --dataset"):
        TrainConfig(dataset="mfeat", data="a.npz", out="x").resolved()
    with pytest.raises(ConfigError, match="--out"):
        TrainConfig(dataset="mfeat").resolved()
    with pytest.raises(ConfigError, match="epochs accepts an integer from 1"):
        TrainConfig(dataset="mfeat", out="x", epochs=0).resolved()
    with pytest.raises(ConfigError, match="unknown optimizer"):
        TrainConfig(dataset="mfeat", out="x", optimizer="lion").resolved()
    resolved = TrainConfig(data="rel/a.npz", out="runs/x").resolved()
    assert Path(resolved.data).is_absolute() and Path(resolved.out).is_absolute()


class _Recipe(Method):
    """A method whose recipe depends on its ``preset`` option (never built: only the recipe)."""

    def __init__(self, spec: Any, preset: str = "default") -> None:  # pragma: no cover
        super().__init__(spec)

    @classmethod
    def training_defaults(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        if options.get("preset") == "paper":
            return {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "gradient_clip_val": 40.0}
        return {"lr": 0.01}


class _Wrapper(Method):
    composable = True

    @classmethod
    def training_defaults(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        return {"lr": 0.5, "weight_decay": 0.0}


@pytest.fixture
def recipes(monkeypatch: pytest.MonkeyPatch) -> None:
    METHODS.names()  # load the built-in methods first
    monkeypatch.setitem(METHODS._entries, "recipe", Entry("recipe", _Recipe, "test"))
    monkeypatch.setitem(METHODS._entries, "wrapper", Entry("wrapper", _Wrapper, "test"))


def test_the_methods_recipe_fills_only_the_settings_not_given(
    recipes: None, tmp_path: Path
) -> None:
    paper = {"recipe": {"preset": "paper"}}
    resolved = TrainConfig(
        dataset="mfeat", method="recipe", method_options=paper, out="x"
    ).resolved()
    assert (resolved.optimizer, resolved.lr, resolved.momentum) == ("sgd", 0.1, 0.9)
    assert resolved.gradient_clip_val == 40.0 and resolved.weight_decay == 1e-4  # global default
    # a value given in Python, on the command line or in a config file wins
    assert TrainConfig(dataset="mfeat", method="recipe", lr=0.3, out="x").resolved().lr == 0.3
    flags = TrainConfig().with_overrides(dataset="mfeat", method="recipe", lr=1e-3, out="x")
    assert flags.resolved().lr == 1e-3  # even when it equals the global default
    (tmp_path / "c.yaml").write_text("dataset: mfeat\nmethod: recipe\nlr: 0.001\nout: x\n")
    from_file = TrainConfig.from_yaml(tmp_path / "c.yaml").resolved()
    assert from_file.lr == 1e-3 and from_file.given == frozenset(from_file.to_dict())
    # outer+inner: the outer method's recipe first, then the inner one's
    both = TrainConfig(dataset="mfeat", method="wrapper+recipe", out="x").resolved()
    assert (both.lr, both.weight_decay) == (0.5, 0.0)
    # the resolved config saves concrete values and reproduces itself
    resolved.to_yaml(tmp_path / "r.yaml")
    assert TrainConfig.from_yaml(tmp_path / "r.yaml").resolved() == resolved


def test_modalities_setting(tmp_path: Path) -> None:
    assert TrainConfig.from_dict({"modalities": "fou, mor"}).modalities == ["fou", "mor"]
    assert TrainConfig.from_dict({"modalities": ["fou"]}).modalities == ["fou"]
    with pytest.raises(ConfigError, match="'modalities'.* a list of names"):
        TrainConfig.from_dict({"modalities": 3})
    with pytest.raises(ConfigError, match="repeats"):
        TrainConfig(dataset="mfeat", modalities=["fou", "fou"], out="x").resolved()
    with pytest.raises(ConfigError, match=r"expects an \.npz"):
        TrainConfig(data="a.npy", out="x").resolved()
