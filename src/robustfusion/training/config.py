"""The training configuration: every setting of a run, with defaults, saved as ``DIR/config.yaml``.

A setting is *given* when a flag, a config file or the constructor sets it; a method's recipe
(:meth:`Method.training_defaults <robustfusion.methods.base.Method.training_defaults>`, e.g. UDML's
``preset=paper``) fills the settings that were not given (:meth:`TrainConfig.resolved`), and the
saved ``config.yaml`` holds the resolved values, so that it reproduces the run exactly.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robustfusion.accepts import Accepts, check_option_values, integer, number
from robustfusion.atomic import write_text
from robustfusion.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
#: Which epoch's weights a run keeps: the best validation accuracy (ties: the earlier epoch, and
#: only epochs the method allows, e.g. UDML's full-weights phase), or the last epoch (what TMC's
#: and UDML's released code report).
SELECTIONS = ("best_val", "last")
#: How a segmentation model turns the fused map into per-pixel logits: ``head``, the task's head
#: on the fused map (one scale); ``skips``, plus class scores from the encoders' shallower maps,
#: fused with the method's weights (FCN's skip architecture; docs/segmentation.md).
DECODERS = ("head", "skips")
#: Settings a method's recipe may not set: what to train on, which method, where, which seed.
NOT_RECIPE = frozenset(
    {"dataset", "data", "data_root", "dataset_options", "modalities", "method", "method_options",
     "out", "seed"}
)  # fmt: skip
#: The settings methods' recipes set (``Method.training_defaults``); any other setting outside
#: :data:`NOT_RECIPE` is allowed too, but these are the ones ``--help`` and ``methods NAME`` show.
RECIPE_SETTINGS = ("optimizer", "lr", "weight_decay", "momentum", "gradient_clip_val")
#: Settings that may differ when a run is resumed: where it lives (a moved or copied folder), how
#: many epochs it runs (``--resume --epochs N`` extends it) and where it runs (results do not
#: depend on them: every random draw is seeded).
RESUMABLE_CHANGES = ("out", "epochs", "accelerator", "num_workers")
#: The most devices (processes) ``devices`` may ask for.
MAX_DEVICES = 1024
#: What each numeric setting accepts: the command line refuses other values while parsing, and
#: :meth:`TrainConfig.check` refuses them in a config file. Upper bounds are sanity limits (a
#: typo such as ``--epochs 300000000`` is refused rather than run for years).
LIMITS: dict[str, Accepts] = {
    "hidden_dim": integer(1, 65536),
    "feature_dim": integer(1, 65536),
    "epochs": integer(1, 100_000),
    "batch_size": integer(1, 1_000_000),
    "eval_batch_size": integer(1, 1_000_000),
    "lr": number(0.0, 100.0, open_minimum=True),
    "weight_decay": number(0.0, 100.0),
    "momentum": number(0.0, 1.0, open_maximum=True),
    "gradient_clip_val": number(0.0, 1e6),
    "seed": integer(0, 2**32 - 1),
    "num_workers": integer(0, 1024),
}


@dataclass
class TrainConfig:
    """Every setting of a training run.

    ``dataset`` names a registered dataset; ``data`` is a generic ``.npz`` file instead (exactly
    one of the two). ``method_options`` is keyed by method name (``{"udml": {"gamma": 4.0}}``),
    ``encoders`` maps a modality to an encoder name (default: by input shape) and
    ``encoder_options`` maps an encoder name to its keyword options (``{"mlp": {"dropout": 0.2}}``).
    ``accelerator``/``devices``/``strategy``/``precision`` go to Lightning unchanged.
    ``modalities`` keeps only those modalities of the dataset (in the dataset's order).
    ``gradient_clip_val`` ``None`` (or 0) means no clipping.

    ``given`` (not saved) names the settings given explicitly; ``None`` means "those that differ
    from the defaults" (what constructing ``TrainConfig(lr=...)`` in Python gives). The others
    may be set by the method's recipe when the config is :meth:`resolved`.
    """

    dataset: str | None = None
    data: str | None = None
    data_root: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    modalities: list[str] | None = None
    method: str = "static"
    fusion: str = "concat"
    decoder: str = "head"
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    encoders: dict[str, str] = field(default_factory=dict)
    encoder_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    hidden_dim: int = 128
    feature_dim: int = 128
    epochs: int = 30
    batch_size: int = 64
    eval_batch_size: int = 256
    selection: str = "best_val"
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    gradient_clip_val: float | None = None
    seed: int = 0
    accelerator: str = "cpu"
    devices: int | str = 1
    strategy: str = "auto"
    precision: str = "32-true"
    num_workers: int = 0
    deterministic: bool = True
    out: str | None = None
    given: frozenset[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.given is None:
            defaults = _defaults()
            self.given = frozenset(k for k in setting_names() if getattr(self, k) != defaults[k])
        else:
            self.given = frozenset(self.given)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(
        cls, data: dict[str, Any], source: str = "the config", given: frozenset[str] | None = None
    ) -> TrainConfig:
        """Build a config from a mapping; unknown keys and ill-typed values raise ConfigError.

        The keys of ``data`` count as given unless ``given`` says otherwise.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{source} must be a mapping of settings, got {type(data).__name__}")
        names = setting_names()
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)} in {source}: valid settings are "
                f"{', '.join(names)}"
            )
        hints = typing.get_type_hints(cls)
        values = {k: _coerce(k, v, hints[k], source) for k, v in data.items()}
        return cls(**values, given=frozenset(data) if given is None else given)

    @classmethod
    def from_yaml(cls, path: Path) -> TrainConfig:
        """Read a config written by :meth:`to_yaml` (or by hand)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"config file {path} does not exist: check the path given to --config"
            )
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            line = str(error).replace("\n", " ")
            raise ConfigError(f"config file {path} is not valid YAML ({line}): fix it") from error
        return cls.from_dict(data or {}, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """Every setting (not ``given``), as saved in ``config.yaml``."""
        data = dataclasses.asdict(self)
        data.pop("given")
        return data

    def to_yaml_text(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_yaml(self, path: Path) -> None:
        """Write every setting to ``path`` atomically."""
        write_text(Path(path), self.to_yaml_text())

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with the given settings replaced; ``None`` values are ignored (flag not given).

        ``method_options`` and ``encoder_options`` are merged per method/encoder,
        ``encoders`` and ``dataset_options`` per key.
        """
        data = self.to_dict()
        given = set(self.given or ())
        for key, value in overrides.items():
            if value is None:
                continue
            given.add(key)
            if key in ("method_options", "encoder_options"):
                merged = {k: dict(v) for k, v in data[key].items()}
                for name, options in value.items():
                    merged.setdefault(name, {}).update(options)
                data[key] = merged
            elif key in ("encoders", "dataset_options"):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return TrainConfig.from_dict(data, source="the command line", given=frozenset(given))

    def recipe(self) -> dict[str, Any]:
        """The training settings the method's recipe sets, given its options: the outer
        method's first, then the inner one's for ``outer+inner`` (unknown names raise)."""
        from robustfusion.registry import METHODS

        values: dict[str, Any] = {}
        for part in self.method.split("+"):
            factory = METHODS.get(part)
            defaults = getattr(factory, "training_defaults", None)
            if defaults is None:
                continue
            options = self.method_options.get(part, {})
            for key, value in defaults(options if isinstance(options, dict) else {}).items():
                if key not in setting_names() or key in NOT_RECIPE:
                    raise ValueError(
                        f"{part}.training_defaults sets {key!r}, which is not a training setting"
                    )
                values.setdefault(key, value)
        return values

    # ------------------------------------------------------------------ checks
    def resolved(self, require_out: bool = True) -> TrainConfig:
        """Validate; return a copy with the method's recipe applied to every setting that was not
        given and with absolute paths (so that the saved config reproduces the run)."""
        if (self.dataset is None) == (self.data is None):
            raise ConfigError(
                "give exactly one of --dataset NAME (see 'robustfusion datasets') or --data FILE.npz"
            )
        if self.out is None and require_out:
            raise ConfigError("no output folder: give --out DIR")
        if self.data is not None and Path(self.data).suffix.lower() != ".npz":
            raise ConfigError(
                f"--data expects an .npz file (arrays y, optional split, one per modality), got "
                f"{self.data}: save your arrays with numpy.savez"
            )
        recipe = {k: v for k, v in self.recipe().items() if k not in (self.given or ())}
        config = self.from_dict({**self.to_dict(), **recipe}, "the method's recipe")
        config.check()

        def absolute(value: str | None) -> str | None:
            return None if value is None else str(Path(value).expanduser().resolve())

        return dataclasses.replace(
            config,
            data=absolute(config.data),
            data_root=absolute(config.data_root),
            out=absolute(config.out),
        )

    def check(self) -> None:
        """Raise a one-line ConfigError for an out-of-range value."""
        for key, accepts in LIMITS.items():
            value = getattr(self, key)
            if value is not None:
                accepts.check(value, key)
        if self.selection not in SELECTIONS:
            raise ConfigError(
                f"unknown selection {self.selection!r}: choose one of {', '.join(SELECTIONS)}"
            )
        if self.decoder not in DECODERS:
            raise ConfigError(
                f"unknown decoder {self.decoder!r}: choose one of {', '.join(DECODERS)}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}"
            )
        if isinstance(self.devices, int) and not 1 <= self.devices <= MAX_DEVICES:
            raise ConfigError(
                f"devices must be at least 1 (or auto, or a list), got {self.devices}"
            )
        if self.modalities is not None:
            if not self.modalities or not all(self.modalities):
                raise ConfigError("--modalities is empty: give names such as fou,mor")
            if len(set(self.modalities)) != len(self.modalities):
                raise ConfigError(f"--modalities repeats a name: {','.join(self.modalities)}")
        for name, options in {**self.method_options, **self.encoder_options}.items():
            if not isinstance(options, dict):
                raise ConfigError(
                    f"options of {name!r} must be a mapping KEY: VALUE, got {options!r}"
                )
        self.check_method_options()
        self.check_encoder_options()

    def check_encoder_options(self) -> None:
        """Every ``encoder_options`` entry names a registered encoder and an option it has, with
        a value it accepts."""
        from robustfusion.registry import ENCODERS, check_options

        for name, options in self.encoder_options.items():
            factory = ENCODERS.get(name)
            check_options(factory, options, f"encoder {name!r}", (1,))  # (1,): an input shape
            check_option_values(factory, options, f"{name}.")

    def check_method_options(self) -> None:
        """Each ``method_options`` entry names a part of ``method`` (``udml.gamma`` with
        ``--method static`` would be stored without effect) and every value is one its option
        accepts (``udml.gamma=abc`` is refused here, before anything is written)."""
        from robustfusion.registry import METHODS, check_options

        parts = self.method.split("+")
        for name, options in self.method_options.items():
            if name not in parts:
                given = ", ".join(f"{name}.{key}" for key in options) or name
                raise ConfigError(
                    f"method option {given} is for method {name!r}, which this run does not use "
                    f"(method {self.method}): drop it, or train with --method {name}"
                )
            factory = METHODS.get(name)
            keywords = {k: v for k, v in options.items() if k != "inner"}
            check_options(factory, keywords, f"method {name!r}", None)  # None: the spec
            check_option_values(factory, keywords, f"{name}.")


def setting_names() -> tuple[str, ...]:
    """The names of every setting (the keys of ``config.yaml``)."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "given")


def _defaults() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(TrainConfig):
        if f.default is not dataclasses.MISSING:
            values[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            values[f.name] = f.default_factory()
    return values


def default_value(name: str) -> Any:
    """The global default of setting ``name`` (what applies when neither the user nor the
    method's recipe sets it)."""
    return _defaults()[name]


def _coerce(key: str, value: Any, hint: Any, source: str) -> Any:
    """Check ``value`` against the field's type hint, converting YAML's strings such as ``1e-3``."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in allowed:
            return None
        raise ConfigError(f"setting {key!r} in {source} cannot be empty")
    for kind in allowed:
        origin = typing.get_origin(kind) or kind
        if origin is float and isinstance(value, int | float | str) and not isinstance(value, bool):
            try:
                return float(value)
            except ValueError:
                continue
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin in (str, bool, dict) and isinstance(value, origin):
            return value
        if origin is list:
            items = value.split(",") if isinstance(value, str) else value
            if isinstance(items, list | tuple) and all(isinstance(v, str) for v in items):
                return [v.strip() for v in items]
    if str in allowed and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # e.g. ``precision: 16`` written without quotes
    names = " or ".join(
        "a list of names" if typing.get_origin(k) is list else getattr(k, "__name__", str(k))
        for k in allowed
        if k is not type(None)
    )
    raise ConfigError(f"setting {key!r} in {source} must be {names}, got {value!r}")
