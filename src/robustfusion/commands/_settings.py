"""One definition per command-line setting, shared by ``train``, ``evaluate`` and ``benchmark``.

Each :class:`Setting` is one :class:`~robustfusion.training.config.TrainConfig` field: its flag,
help, group and how its text is parsed. Its default is read from ``TrainConfig`` (so ``--help``
never drifts from the code) and shown in the help; the optimisation settings a method's recipe
may set say so. Flags default to ``None`` in ``argparse`` ("not given"), so a flag overrides a
``--config`` file only when it is given.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from robustfusion.accepts import TEXT, Accepts, ArgType, PairType, choice
from robustfusion.commands._options import flat_options, nested_options
from robustfusion.errors import ConfigError
from robustfusion.training.config import (
    DECODERS,
    LIMITS,
    MAX_DEVICES,
    OPTIMIZERS,
    RECIPE_SETTINGS,
    default_value,
)

GROUPS = {
    "data": "data",
    "model": "model",
    "optimisation": "optimisation",
    "hardware": "hardware (passed to Lightning; checked before anything is written)",
}


@dataclass(frozen=True)
class Setting:
    """A ``TrainConfig`` field on the command line.

    ``kind``: ``value`` (text), ``int``, ``float``, ``devices`` (an int, ``auto`` or a list),
    ``list`` (``a,b``), ``pairs`` (repeatable ``KEY=VALUE``, values parsed as YAML), ``names``
    (repeatable ``KEY=NAME``, kept as text) or ``nested`` (repeatable ``NAME.KEY=VALUE``).
    ``default`` replaces the text derived from ``TrainConfig`` where that says little.
    """

    field: str
    help: str
    group: str
    kind: str = "value"
    metavar: str | None = None
    flag: str = ""
    default: str | None = None
    choices: tuple[str, ...] | None = None

    @property
    def option(self) -> str:
        return self.flag or "--" + self.field.replace("_", "-")

    def accepts(self) -> Accepts | None:
        """What one value of this setting accepts (``None``: ``KEY=VALUE`` items, checked against
        the component they configure)."""
        if self.kind in ("pairs", "names", "nested"):
            return None
        if self.choices:
            return choice(*self.choices)
        if self.kind in ("int", "float"):
            return LIMITS[self.field]
        return TEXT

    def arg_type(self) -> Callable[[str], Any]:
        """The ``argparse`` ``type=``: the value is checked while the arguments are parsed."""
        if self.kind in ("pairs", "names", "nested"):
            return PairType(self.option, nested=self.kind == "nested")
        if self.kind == "devices":
            return DevicesType(self.option)
        accepts = self.accepts()
        assert accepts is not None
        return ArgType(accepts, self.option, items=self.kind == "list")

    def default_text(self) -> str:
        if self.default is not None:
            return self.default
        value = default_value(self.field)
        text = "none" if value in (None, {}, []) else str(value)
        if self.field in RECIPE_SETTINGS:
            return f"the method's recipe, else {text}"
        return text


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "dataset",
        "a registered dataset (see 'robustfusion datasets'); give this or --data",
        "data",
        metavar="NAME",
        default="none",
    ),
    Setting(
        "data",
        "your own data: an .npz with y, an optional split and one array per modality",
        "data",
        metavar="FILE.npz",
        default="none",
    ),
    Setting(
        "data_root",
        "folder of a dataset's prepared files",
        "data",
        metavar="DIR",
        default="the dataset's cache folder",
    ),
    Setting(
        "dataset_options",
        "dataset option, value parsed as YAML (repeatable)",
        "data",
        kind="pairs",
        metavar="KEY=VALUE",
        flag="--dataset-option",
    ),
    Setting(
        "modalities",
        "keep only these modalities, e.g. fou,mor (kept in the dataset's order)",
        "data",
        kind="list",
        metavar="A,B",
        default="all of the dataset's",
    ),
    Setting("method", "fusion method (see 'robustfusion methods')", "model", metavar="NAME"),
    Setting(
        "fusion",
        "fusion head: concat, sum, attention or gated",
        "model",
        metavar="NAME",
    ),
    Setting(
        "decoder",
        "segmentation: 'head' (the head on the fused map) or 'skips' (plus class scores from "
        "the encoders' finer maps, fused with the method's weights)",
        "model",
        metavar="NAME",
        choices=DECODERS,
    ),
    Setting(
        "method_options",
        "method option, value parsed as YAML, e.g. udml.gamma=4 (repeatable; see "
        "'robustfusion methods NAME')",
        "model",
        kind="nested",
        metavar="NAME.KEY=VALUE",
        flag="--method-option",
    ),
    Setting(
        "encoders",
        "encoder of a modality, e.g. rgb=resnet18 (repeatable)",
        "model",
        kind="names",
        metavar="MODALITY=NAME",
        flag="--encoder",
        default="the dataset's, else by input shape",
    ),
    Setting(
        "encoder_options",
        "encoder option, e.g. mlp.dropout=0.2 (repeatable)",
        "model",
        kind="nested",
        metavar="ENCODER.KEY=VALUE",
        flag="--encoder-option",
    ),
    Setting("hidden_dim", "width of the fusion head", "model", kind="int", metavar="N"),
    Setting("feature_dim", "encoder output size", "model", kind="int", metavar="N"),
    Setting("epochs", "number of epochs", "optimisation", kind="int", metavar="N"),
    Setting("batch_size", "training batch size", "optimisation", kind="int", metavar="N"),
    Setting(
        "eval_batch_size", "validation and test batch size", "optimisation", kind="int", metavar="N"
    ),
    Setting(
        "optimizer",
        "optimiser",
        "optimisation",
        metavar="NAME",
        choices=OPTIMIZERS,
    ),
    Setting(
        "selection",
        "which epoch's weights the run keeps: best_val (best validation accuracy) or last",
        "optimisation",
        metavar="WHICH",
        choices=("best_val", "last"),
    ),
    Setting("lr", "base learning rate", "optimisation", kind="float", metavar="LR"),
    Setting("weight_decay", "weight decay", "optimisation", kind="float", metavar="WD"),
    Setting("momentum", "SGD momentum", "optimisation", kind="float", metavar="M"),
    Setting(
        "gradient_clip_val",
        "clip gradients to this norm (0: no clipping)",
        "optimisation",
        kind="float",
        metavar="NORM",
    ),
    Setting(
        "seed",
        "seeds the split, initialisation and shuffling",
        "optimisation",
        kind="int",
        metavar="S",
    ),
    Setting("accelerator", "cpu, gpu, mps or auto", "hardware", metavar="NAME"),
    Setting(
        "devices", "number of devices, a list such as 0,1, or auto", "hardware", kind="devices"
    ),
    Setting("strategy", "auto, ddp, ddp_spawn ...", "hardware", metavar="NAME"),
    Setting("precision", "32-true, 16-mixed, bf16-mixed, 64-true ...", "hardware", metavar="P"),
    Setting("num_workers", "DataLoader worker processes", "hardware", kind="int", metavar="N"),
)


class DevicesType(ArgType):
    """``--devices``: a count from 1 to ``MAX_DEVICES``, ``auto``, or a comma-separated list of device
    indices (``0,1``)."""

    def __init__(self, flag: str) -> None:
        super().__init__(TEXT, flag)

    def __call__(self, text: str) -> Any:
        value = text.strip()
        if value == "auto":
            return value
        if value.isdigit() and 1 <= int(value) <= MAX_DEVICES:
            return int(value)
        parts = value.split(",")
        if "," in value and all(p.strip().isdigit() for p in parts):
            return value
        raise argparse.ArgumentTypeError(f"{self.flag} accepts {self.describe()}, got {text!r}")

    def describe(self) -> str:
        return f"a count from 1 to {MAX_DEVICES}, auto, or a list of device indices such as 0,1"


def add_settings(parser: argparse.ArgumentParser, exclude: Iterable[str] = ()) -> list[Setting]:
    """Add every setting except the fields in ``exclude``, in groups; returns those added."""
    skip = set(exclude)
    groups: dict[str, argparse._ArgumentGroup] = {}
    added = []
    for setting in SETTINGS:
        if setting.field in skip:
            continue
        if setting.group not in groups:
            groups[setting.group] = parser.add_argument_group(GROUPS[setting.group])
        repeat = setting.kind in ("pairs", "names", "nested")
        groups[setting.group].add_argument(
            setting.option,
            dest=setting.field,
            metavar=setting.metavar,
            type=setting.arg_type(),
            action="append" if repeat else "store",
            default=None,
            help=f"{setting.help} (default: {setting.default_text()})",
        )
        added.append(setting)
    return added


def overrides_from_args(args: argparse.Namespace, settings: Iterable[Setting]) -> dict[str, Any]:
    """``TrainConfig.with_overrides`` keywords from parsed flags (``None``: flag not given)."""
    values: dict[str, Any] = {}
    for setting in settings:
        raw = getattr(args, setting.field)
        values[setting.field] = None if raw is None else _parse(setting, raw)
    return values


def _parse(setting: Setting, raw: Any) -> Any:
    if setting.kind == "pairs":
        return flat_options(raw, setting.option)
    if setting.kind == "names":
        return flat_options(raw, setting.option, parse=False)
    if setting.kind == "nested":
        return nested_options(raw, setting.option)
    if setting.kind == "list" and isinstance(raw, str):  # parsed by the type unless set by hand
        names = [part.strip() for part in raw.split(",")]
        if not all(names):
            raise ConfigError(f"{setting.option} accepts names such as a,b, got {raw!r}")
        return names
    return raw


def add_weights_argument(parser: argparse.ArgumentParser) -> None:
    """``--weights learned|uniform|oracle``: the modality weights a method fuses with at test."""
    from robustfusion.methods.base import WEIGHT_MODES

    parser.add_argument(
        "--weights",
        type=ArgType(choice(*WEIGHT_MODES), "--weights"),
        default="learned",
        help="fuse with the method's own weights (learned), uniform weights, or the oracle's "
        "(corrupted modalities at the lowest weight); methods without per-sample weights are "
        "unaffected (default: learned)",
    )


def add_print_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved settings as YAML (the method's recipe applied) and exit "
        "without writing anything",
    )
