import pytest

from robustfusion.errors import RobustFusionError, UnknownNameError
from robustfusion.registry import ENCODERS, FUSIONS, METHODS, Registry


def test_register_and_get() -> None:
    registry: Registry = Registry("widget")

    @registry.register("round", "a round widget")
    def make_round() -> str:
        return "round"

    assert registry.get("round") is make_round
    assert registry.names() == ["round"]
    assert [entry.description for entry in registry] == ["a round widget"]


def test_duplicate_registration_is_rejected() -> None:
    registry: Registry = Registry("widget")
    registry.register("a", "first")(object)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("a", "second")(object)


def test_unknown_name_suggests_the_closest_and_lists_choices() -> None:
    with pytest.raises(UnknownNameError) as info:
        METHODS.get("statik")
    message = str(info.value)
    assert "did you mean 'static'" in message and "choose one of" in message
    assert "\n" not in message
    assert isinstance(info.value, RobustFusionError)


def test_builtins_are_discovered() -> None:
    assert {"static", "unimodal"} <= set(METHODS.names())
    assert set(FUSIONS.names()) >= {"concat", "sum", "attention", "gated"}
    assert set(ENCODERS.names()) >= {"mlp", "cnn", "resnet18"}
