"""The training configuration: every setting of a run, with defaults, saved as ``DIR/config.yaml``."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robustfusion.atomic import write_text
from robustfusion.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass
class TrainConfig:
    """Every setting of a training run.

    ``dataset`` names a registered dataset; ``data`` is a generic ``.npz`` file instead (exactly
    one of the two). ``method_options`` is keyed by method name (``{"udml": {"gamma": 4.0}}``),
    ``encoders`` maps a modality to an encoder name (default: by input shape) and
    ``encoder_options`` maps an encoder name to its keyword options (``{"mlp": {"dropout": 0.2}}``).
    ``accelerator``/``devices``/``strategy``/``precision`` go to Lightning unchanged.
    """

    dataset: str | None = None
    data: str | None = None
    data_root: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    method: str = "static"
    fusion: str = "concat"
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    encoders: dict[str, str] = field(default_factory=dict)
    encoder_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    hidden_dim: int = 128
    feature_dim: int = 128
    epochs: int = 30
    batch_size: int = 64
    eval_batch_size: int = 256
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

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "the config") -> TrainConfig:
        """Build a config from a mapping; unknown keys and ill-typed values raise ConfigError."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source} must be a mapping of settings, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)} in {source}: valid settings are "
                f"{', '.join(names)}"
            )
        hints = typing.get_type_hints(cls)
        values = {k: _coerce(k, v, hints[k], source) for k, v in data.items()}
        return cls(**values)

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
        return dataclasses.asdict(self)

    def to_yaml(self, path: Path) -> None:
        """Write every setting to ``path`` atomically."""
        write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with the given settings replaced; ``None`` values are ignored (flag not given).

        ``method_options`` and ``encoder_options`` are merged per method/encoder,
        ``encoders`` and ``dataset_options`` per key.
        """
        data = self.to_dict()
        for key, value in overrides.items():
            if value is None:
                continue
            if key in ("method_options", "encoder_options"):
                merged = {k: dict(v) for k, v in data[key].items()}
                for name, options in value.items():
                    merged.setdefault(name, {}).update(options)
                data[key] = merged
            elif key in ("encoders", "dataset_options"):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return TrainConfig.from_dict(data, source="the command line")

    # ------------------------------------------------------------------ checks
    def resolved(self) -> TrainConfig:
        """Validate and return a copy with absolute paths (so that the saved config reproduces)."""
        if (self.dataset is None) == (self.data is None):
            raise ConfigError(
                "give exactly one of --dataset NAME (see 'robustfusion datasets') or --data FILE.npz"
            )
        if self.out is None:
            raise ConfigError("no output folder: give --out DIR")
        for key in ("epochs", "batch_size", "eval_batch_size", "hidden_dim", "feature_dim"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {self.num_workers}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}"
            )
        for name, options in {**self.method_options, **self.encoder_options}.items():
            if not isinstance(options, dict):
                raise ConfigError(
                    f"options of {name!r} must be a mapping KEY: VALUE, got {options!r}"
                )

        def absolute(value: str | None) -> str | None:
            return None if value is None else str(Path(value).expanduser().resolve())

        return dataclasses.replace(
            self,
            data=absolute(self.data),
            data_root=absolute(self.data_root),
            out=absolute(self.out),
        )


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
    if str in allowed and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # e.g. ``precision: 16`` written without quotes
    names = " or ".join(getattr(k, "__name__", str(k)) for k in allowed if k is not type(None))
    raise ConfigError(f"setting {key!r} in {source} must be {names}, got {value!r}")
