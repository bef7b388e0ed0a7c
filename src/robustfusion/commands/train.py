"""``robustfusion train``: train one method on one dataset and write a run folder."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from robustfusion.commands._options import flat_options, nested_options
from robustfusion.training.config import TrainConfig

NAME = "train"
HELP = "train a method on a dataset; writes DIR/config.yaml, DIR/model.pt and DIR/metrics.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", help="a registered dataset (see 'robustfusion datasets')")
    data.add_argument("--data", help="your own data: an .npz with y, optional split, modalities")
    data.add_argument("--data-root", help="folder of a dataset's prepared files")
    data.add_argument(
        "--dataset-option", action="append", metavar="KEY=VALUE", help="dataset option (repeatable)"
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--method", help="fusion method (see 'robustfusion methods'); default static"
    )
    model.add_argument("--fusion", help="fusion head: concat (default), sum, attention or gated")
    model.add_argument(
        "--method-option",
        action="append",
        metavar="NAME.KEY=VALUE",
        help="method option, value parsed as YAML, e.g. udml.gamma=4 (repeatable)",
    )
    model.add_argument(
        "--encoder", action="append", metavar="MODALITY=NAME", help="encoder of a modality"
    )
    model.add_argument(
        "--encoder-option",
        action="append",
        metavar="ENCODER.KEY=VALUE",
        help="encoder option, e.g. mlp.dropout=0.2 (repeatable)",
    )
    model.add_argument("--hidden-dim", type=int, help="width of the fusion head (default 128)")
    model.add_argument("--feature-dim", type=int, help="encoder output size (default 128)")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, help="number of epochs (default 30)")
    optim.add_argument("--batch-size", type=int, help="training batch size (default 64)")
    optim.add_argument("--lr", type=float, help="base learning rate (default 1e-3)")
    optim.add_argument("--weight-decay", type=float, help="weight decay (default 1e-4)")
    optim.add_argument("--optimizer", help="adam (default), adamw or sgd")
    optim.add_argument("--seed", type=int, help="seeds the split, initialisation and shuffling")
    hardware = parser.add_argument_group("hardware (passed to Lightning)")
    hardware.add_argument("--accelerator", help="cpu (default), gpu, auto ...")
    hardware.add_argument("--devices", help="number of devices, a list, or auto (default 1)")
    hardware.add_argument("--strategy", help="auto (default), ddp ...")
    hardware.add_argument("--precision", help="32-true (default), 16-mixed, bf16-mixed ...")
    hardware.add_argument("--num-workers", type=int, help="DataLoader workers (default 0)")
    run = parser.add_argument_group("run")
    run.add_argument("--config", help="a config.yaml to start from; flags override its values")
    run.add_argument("--out", help="the run folder DIR")
    run.add_argument(
        "--resume", action="store_true", help="continue DIR's run from its last checkpoint"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")


def _devices(text: str | None) -> int | str | None:
    return int(text) if text is not None and text.isdigit() else text


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The base config (``--config``, or DIR's own when resuming), overridden by the flags."""
    if args.config is not None:
        base = TrainConfig.from_yaml(Path(args.config))
    elif args.resume and args.out is not None and (Path(args.out) / "config.yaml").is_file():
        base = TrainConfig.from_yaml(Path(args.out) / "config.yaml")
    else:
        base = TrainConfig()
    overrides = {
        "dataset": args.dataset,
        "data": args.data,
        "data_root": args.data_root,
        "dataset_options": flat_options(args.dataset_option, "--dataset-option"),
        "method": args.method,
        "fusion": args.fusion,
        "method_options": nested_options(args.method_option, "--method-option"),
        "encoders": flat_options(args.encoder, "--encoder", parse=False),
        "encoder_options": nested_options(args.encoder_option, "--encoder-option"),
        "hidden_dim": args.hidden_dim,
        "feature_dim": args.feature_dim,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "optimizer": args.optimizer,
        "seed": args.seed,
        "accelerator": args.accelerator,
        "devices": _devices(args.devices),
        "strategy": args.strategy,
        "precision": args.precision,
        "num_workers": args.num_workers,
        "out": args.out,
    }
    config = base.with_overrides(**overrides)
    # a flag beats the config: --dataset replaces its data file and --data its dataset
    if args.dataset is not None and args.data is None:
        config = dataclasses.replace(config, data=None)
    if args.data is not None and args.dataset is None:
        config = dataclasses.replace(config, dataset=None)
    return config


def run(args: argparse.Namespace) -> int:
    from robustfusion.training.run import train  # Lightning loads only when training

    config = config_from_args(args)
    metrics = train(config, resume=args.resume, progress=not args.no_progress)
    if metrics:
        print(
            f"test accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
            f"ECE {metrics['ece']:.4f}  (best epoch {metrics['best_epoch']}, "
            f"val accuracy {metrics['val_accuracy']:.4f})  -> {config.resolved().out}"
        )
    return 0
