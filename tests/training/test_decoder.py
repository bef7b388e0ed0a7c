"""``--decoder skips``: a model built with skip scores, for every method that segments.

Each case builds the real model of ``robustfusion train`` (``build_model``) on a 16x16
``rgbd_scenes`` with ``cnn`` encoders and checks: at initialisation it predicts what the one-scale
model predicts (the scores start at zero); a training step reaches the skip scores; a missing
modality's skip maps cannot change a prediction; a test-time weight swap acts on the skips.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from robustfusion.data import collate
from robustfusion.errors import ConfigError
from robustfusion.methods.base import method_facts
from robustfusion.registry import METHODS
from robustfusion.training.build import build_decoder, build_model, load_data
from robustfusion.training.config import TrainConfig
from robustfusion.training.seeding import seed_all

SEGMENTING = tuple(
    name for name in METHODS.names() if "segmentation" in method_facts(name).tasks
) + ("mwam+modality_dropout",)
OPTIONS = {"size": 16, "train": 8, "val": 4, "test": 4}


def _config(method: str, decoder: str = "skips") -> TrainConfig:
    return TrainConfig(
        dataset="rgbd_scenes",
        dataset_options=OPTIONS,
        method=method,
        decoder=decoder,
        encoders={"rgb": "cnn", "depth": "cnn"},
        encoder_options={"cnn": {"width": 4}},
        feature_dim=8,
        hidden_dim=8,
    )


@pytest.fixture(scope="module")
def splits():
    return load_data(_config("static"))


def _model(splits, method: str, decoder: str = "skips"):
    seed_all(0)
    return build_model(_config(method, decoder), splits.info)


def _batch(splits, n: int = 4):
    return collate([splits.test[i] for i in range(n)])


@pytest.mark.parametrize("method", SEGMENTING)
def test_at_initialisation_the_model_predicts_what_the_one_scale_model_does(splits, method) -> None:
    batch = _batch(splits)
    with_skips, one_scale = _model(splits, method).eval(), _model(splits, method, "head").eval()
    assert set(one_scale.state_dict()) < set(with_skips.state_dict())
    with_skips.load_state_dict(one_scale.state_dict(), strict=False)
    with torch.no_grad():
        torch.testing.assert_close(with_skips(batch).logits, one_scale(batch).logits)


@pytest.mark.parametrize("method", SEGMENTING)
def test_a_training_step_reaches_the_skip_scores(splits, method) -> None:
    model = _model(splits, method).train()
    batch = model.method.prepare_batch(_batch(splits), True)
    output = model(batch)
    loss = sum(model.method.losses(output, batch).values())
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.decoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(torch.count_nonzero(g) for g in grads)


def _perturbed(model):
    torch.manual_seed(3)
    for module in model.decoder.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight)
    return model.eval()


@pytest.mark.parametrize("method", SEGMENTING)
def test_a_missing_modality_cannot_change_the_prediction_through_its_skips(splits, method) -> None:
    model = _perturbed(_model(splits, method))
    batch = _batch(splits)
    present = {**batch.present, "depth": torch.tensor([True, False, True, False])}
    garbage = {**batch.inputs, "depth": batch.inputs["depth"] + 7.0}
    with torch.no_grad():
        first = model(dataclasses.replace(batch, present=present)).logits
        second = model(dataclasses.replace(batch, present=present, inputs=garbage)).logits
    absent = ~present["depth"]
    torch.testing.assert_close(first[absent], second[absent])


@pytest.mark.parametrize(
    "method",
    [m for m in SEGMENTING if getattr(METHODS.get(m.split("+")[-1]), "has_dynamic_weights", False)],
)
def test_a_weight_swap_acts_on_the_skips_too(splits, method) -> None:
    model = _perturbed(_model(splits, method))
    batch = _batch(splits)
    corrupted = torch.zeros(4, 2, dtype=torch.bool)
    corrupted[:, 1] = True  # oracle: depth weight 0 in every sample
    model.method.set_weight_mode("oracle", corrupted)
    garbage = {**batch.inputs, "depth": batch.inputs["depth"] + 7.0}
    with torch.no_grad():
        output = model(batch)
        skips = {}
        for m, encoder in model.encoders.items():
            skips[m] = encoder.forward_pyramid(garbage[m])[:-1]
        with_garbage = model.decoder(skips, output.weights, output.logits.shape[-2:])
        clean = {m: model.encoders[m].forward_pyramid(batch.inputs[m])[:-1] for m in skips}
        reference = model.decoder(clean, output.weights, output.logits.shape[-2:])
    model.method.set_weight_mode("learned")
    torch.testing.assert_close(output.weights[:, 1], torch.zeros(4))
    torch.testing.assert_close(with_garbage, reference)


def test_classification_and_encoders_without_finer_maps_are_refused() -> None:
    mfeat = load_data(TrainConfig(dataset="mfeat", modalities=["fou", "mor"]))
    with pytest.raises(ConfigError, match="--decoder skips fuses finer feature maps"):
        build_decoder(TrainConfig(decoder="skips"), mfeat.info, {})

    class Flat(nn.Module):
        pass

    scenes = load_data(_config("static"))
    with pytest.raises(ConfigError, match="gives no finer maps; use cnn or resnet18"):
        build_decoder(_config("static"), scenes.info, {"rgb": Flat(), "depth": Flat()})


def test_an_unknown_decoder_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown decoder 'fpn': choose one of head, skips"):
        TrainConfig(decoder="fpn").check()


def test_train_and_evaluate_with_skips_through_the_command_line(tmp_path, capsys) -> None:
    from robustfusion.cli import main

    out = tmp_path / "run"
    args = ["train", "--dataset", "rgbd_scenes", "--method", "udml", "--decoder", "skips"]
    for key, value in OPTIONS.items():
        args += ["--dataset-option", f"{key}={value}"]
    args += ["--encoder", "rgb=cnn", "--encoder", "depth=cnn", "--epochs", "2"]
    args += ["--feature-dim", "8", "--hidden-dim", "8", "--batch-size", "4", "--no-progress"]
    assert main([*args, "--out", str(out)]) == 0
    assert "decoder: skips" in (out / "config.yaml").read_text()
    state = torch.load(out / "model.pt", weights_only=True)
    assert any(key.startswith("decoder.scores.depth") for key in state)
    capsys.readouterr()
    assert main(["evaluate", str(out), "--corruption", "missing", "--target", "depth"]) == 0
    assert "miou" in capsys.readouterr().out
    rows = json.loads((out / "eval-missing-depth.json").read_text())["results"]
    assert rows[-1]["mean_weight"]["depth"] < rows[0]["mean_weight"]["depth"]  # missing depth
    assert all(0.0 <= row["miou"] <= 1.0 for row in rows)


def test_skips_on_a_classification_dataset_exit_2_before_writing(tmp_path, capsys) -> None:
    from robustfusion.cli import main

    out = tmp_path / "run"
    args = ["train", "--dataset", "mfeat", "--decoder", "skips", "--epochs", "1"]
    assert main([*args, "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: --decoder skips fuses finer feature maps, which classification does not use: "
        "drop --decoder (it applies to segmentation datasets)"
    ]
    assert not out.exists()
