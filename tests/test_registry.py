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


def test_check_options_names_accepted_options() -> None:
    from robustfusion.errors import ConfigError
    from robustfusion.registry import check_options

    def factory(shape: tuple[int, ...], width: int = 3, depth: int = 2) -> None:
        raise TypeError("a bug inside the component")

    check_options(factory, {"width": 4}, "widget 'w'", (1,))
    with pytest.raises(ConfigError, match="bad options for widget 'w'.*accepts width, depth"):
        check_options(factory, {"colour": 1}, "widget 'w'", (1,))


def test_a_type_error_inside_a_method_is_not_disguised_as_bad_options(monkeypatch) -> None:
    from robustfusion.methods import MethodSpec, build_method

    class Broken:
        def __init__(self, spec: MethodSpec, size: int = 1) -> None:
            raise TypeError("internal bug")

    monkeypatch.setitem(
        METHODS._entries, "broken", type(METHODS._entries["static"])("broken", Broken, "x")
    )
    spec = MethodSpec(("a", "b"), {"a": 2, "b": 2}, 2)
    with pytest.raises(TypeError, match="internal bug"):
        build_method("broken", spec, {"broken": {"size": 2}})


def test_listing_aligns_descriptions_in_one_column() -> None:
    registry: Registry = Registry("widget")
    registry.register("a", "short name")(object)
    registry.register("longer", "long name")(object)
    assert registry.listing() == ["a       short name", "longer  long name"]
