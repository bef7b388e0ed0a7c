"""The contract every registered method keeps, checked for each one (as timm tests every model).

Parametrised over :data:`robustfusion.registry.METHODS` and the compositions in
:data:`COMPOSITIONS`, so a new method file is checked as soon as it registers. Each method is
built from a small :class:`MethodSpec` of vectors, and of feature maps as well when it wants
them (``wants_spatial_features``), and as a segmentation model (feature maps, label maps with
ignored pixels) when every part declares segmentation in its ``MethodFacts``; everything is tiny
and runs on the CPU. What is checked:

* a training step (``prepare_batch``, ``encode``, forward, losses, backward, ``after_backward``,
  an optimiser step) early and late in a run, with finite losses and gradients;
* a ``state_dict`` round trip: a fresh model that loads it gives the same evaluation outputs;
* absent modalities: weight 0, the weights of each sample sum to 1 over its present modalities,
  and an absent modality's (garbage) features cannot change that sample's prediction;
* weight swaps, for methods with dynamic weights: ``uniform`` gives uniform weights, ``oracle``
  weight 0 to the corrupted modality, ``learned`` restores the outputs; the uniform twin
  (``weights="uniform"``) trains with uniform weights;
* DDP safety: buffers have types a process group can broadcast, and a replica that saw other data
  (another rank) and then receives the parameters and buffers (what DDP synchronises) computes
  the same next training step: no state that drives training lives outside them;
* wrappers (``WrapperMethod``) forward every hook to their inner method.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import pytest
import torch
from torch import Tensor, nn

from robustfusion.errors import ConfigError
from robustfusion.methods.base import Method, MethodSpec, build_method, method_facts
from robustfusion.methods.wrapper import WrapperMethod
from robustfusion.registry import METHODS
from robustfusion.tasks import IGNORE_INDEX
from robustfusion.types import Batch, FusionOutput

#: Compositions checked beside every registered method: the board's, and wrappers around methods
#: with schedules, dynamic weights, their own ``encode`` or gradient modulation.
COMPOSITIONS = (
    "mwam+modality_dropout",
    "modality_dropout+udml",
    "modality_dropout+dms",
    "modality_dropout+tmc",
    "mwam+pe",
    "mwam+ogm_ge",
)
CASES = (*METHODS.names(), *COMPOSITIONS)
#: Methods that may leave a sample without weights: ``unimodal`` when its modality is absent
#: (it has nothing to predict from).
ABSTAINS = frozenset({"unimodal"})
BATCH = 8
CLASSES = 3
#: Raw input shapes per modality: vectors, or small single-channel maps.
VECTOR_INPUTS = {"a": (5,), "b": (7,)}
MAP_INPUTS = {"a": (1, 8, 8), "b": (1, 6, 8)}


def _spec(kind: str, modalities: tuple[str, ...] = ("a", "b")) -> MethodSpec:
    if kind == "segmentation":  # an RGB-like and a depth-like map of one size, label maps
        shapes = {m: ((3, 8, 8) if i % 2 == 0 else (1, 8, 8)) for i, m in enumerate(modalities)}
        return MethodSpec(
            modalities=modalities,
            feature_dims=dict.fromkeys(modalities, 4),
            num_classes=CLASSES,
            hidden_dim=8,
            input_shapes=shapes,
            input_kinds={m: ("image" if i % 2 == 0 else "map") for i, m in enumerate(modalities)},
            input_scales={m: (1 / 255 if i % 2 == 0 else 1.0) for i, m in enumerate(modalities)},
            task="segmentation",
            target_shape=(8, 8),
        )
    if kind == "maps":
        shapes = {m: MAP_INPUTS.get(m, (1, 8, 8)) for m in modalities}
        kinds = {m: ("image" if i % 2 == 0 else "spectrogram") for i, m in enumerate(modalities)}
        dims = dict.fromkeys(modalities, 4)
        scales: dict[str, float | None] = {m: 1 / 255 for m in modalities}
    else:
        shapes = {m: VECTOR_INPUTS.get(m, (3,)) for m in modalities}
        kinds = dict.fromkeys(modalities, "vector")
        dims = {m: 4 + 2 * (i % 2) for i, m in enumerate(modalities)}  # unequal sizes
        scales = {}
    return MethodSpec(
        modalities=modalities,
        feature_dims=dims,
        num_classes=CLASSES,
        hidden_dim=8,
        input_shapes=shapes,
        input_kinds=kinds,
        input_scales=scales,
    )


def _encoders(spec: MethodSpec, kind: str) -> nn.ModuleDict:
    """A linear layer per vector modality; a convolution and pooling per map modality."""
    encoders = {}
    for m in spec.modalities:
        shape, dim = spec.input_shapes[m], spec.feature_dims[m]
        if kind in ("maps", "segmentation"):
            encoders[m] = nn.Sequential(
                nn.Conv2d(shape[0], dim, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2)
            )
        else:
            encoders[m] = nn.Sequential(nn.Linear(shape[0], dim), nn.ReLU())
    return nn.ModuleDict(encoders)


def _batch(spec: MethodSpec, seed: int = 0, absent: bool = False) -> Batch:
    """Class-dependent inputs; with ``absent``, the last modality is missing in samples 0-2 and
    the first in samples 3-4 (their inputs zeroed, the batch contract)."""
    g = torch.Generator().manual_seed(seed)
    target = torch.arange(BATCH) % CLASSES
    if spec.task == "segmentation":  # each sample's class on its left half, a void border
        labels = target.view(-1, 1, 1).expand(BATCH, *spec.target_shape).clone()
        labels[:, :, spec.target_shape[1] // 2 :] = (target.view(-1, 1) + 1) % CLASSES
        labels[:, 0] = IGNORE_INDEX
    inputs, present = {}, {}
    for i, m in enumerate(spec.modalities):
        shape = spec.input_shapes[m]
        x = torch.randn(BATCH, *shape, generator=g) + target.view(-1, *[1] * len(shape)) * (i + 1)
        seen = torch.ones(BATCH, dtype=torch.bool)
        if absent and m == spec.modalities[-1]:
            seen[:3] = False
        if absent and m == spec.modalities[0]:
            seen[3:5] = False
        inputs[m] = x * seen.view(-1, *[1] * len(shape)).to(x.dtype)
        present[m] = seen
    if spec.task == "segmentation":
        target = labels
    return Batch(inputs=inputs, present=present, target=target, index=torch.arange(BATCH) + seed)


def _kinds(case: str) -> list[str]:
    """Vectors for every method; maps as well for those that want them; segmentation for those
    whose every part is defined for it (:class:`MethodFacts`)."""
    parts = case.split("+")
    wants = any(getattr(METHODS.get(part), "wants_spatial_features", False) for part in parts)
    kinds = ["vectors", "maps"] if wants else ["vectors"]
    if all("segmentation" in method_facts(part).tasks for part in parts):
        kinds.append("segmentation")
    return kinds


KIND_CASES = [
    pytest.param(case, kind, id=f"{case}-{kind}") for case in CASES for kind in _kinds(case)
]


def _build(case: str, spec: MethodSpec, seed: int = 0, **options: Mapping[str, object]) -> Method:
    torch.manual_seed(seed)
    return build_method(case, spec, options)


def _step(
    method: Method,
    encoders: nn.ModuleDict,
    batch: Batch,
    optimiser: torch.optim.Optimizer | None = None,
) -> tuple[FusionOutput, dict[str, Tensor]]:
    """One training step as the trainer takes it; gradients are left in place."""
    method.train()
    encoders.train()
    for p in [*method.parameters(), *encoders.parameters()]:
        p.grad = None
    batch = method.prepare_batch(batch, training=True)
    output = method(method.encode(encoders, batch.inputs), batch.present)
    terms = method.losses(output, batch)
    sum(terms.values()).backward()
    method.after_backward(encoders)
    if optimiser is not None:
        optimiser.step()
    return output, terms


def _evaluate(method: Method, encoders: nn.ModuleDict, batch: Batch) -> FusionOutput:
    method.eval()
    encoders.eval()
    torch.manual_seed(123)
    with torch.no_grad():
        batch = method.prepare_batch(batch, training=False)
        return method(method.encode(encoders, batch.inputs), batch.present)


def _dynamic(method: Method) -> bool:
    return bool(method.has_dynamic_weights)


# --------------------------------------------------------------------------------------- training
@pytest.mark.parametrize(("case", "kind"), KIND_CASES)
def test_a_training_step_early_and_late_in_the_run_is_finite(case: str, kind: str) -> None:
    spec = _spec(kind)
    method = _build(case, spec)
    encoders = _encoders(spec, kind)
    optimiser = torch.optim.SGD([*method.parameters(), *encoders.parameters()], lr=0.01)
    for epoch in (0, 8):  # early: warm-ups, modulation windows; late: full weights, lr steps
        method.on_epoch_start(epoch, 10)
        output, terms = _step(method, encoders, _batch(spec, seed=epoch), optimiser)
        assert output.logits.shape == (BATCH, CLASSES, *spec.target_shape)
        assert output.weights.shape == (BATCH, len(spec.modalities))
        assert output.modalities == spec.modalities
        assert terms and all(bool(torch.isfinite(v).all()) for v in terms.values()), terms
        for name, p in [*method.named_parameters(), *encoders.named_parameters()]:
            assert p.grad is None or bool(torch.isfinite(p.grad).all()), name
        assert float(method.lr_scale(epoch, 10)) > 0
        assert isinstance(method.selectable_epoch(epoch, 10), bool)
        values = method.logged_values()
        assert all(isinstance(k, str) and isinstance(v, float) for k, v in values.items())
    assert method.selectable_epoch(9, 10), "the last epoch must be selectable"


@pytest.mark.parametrize("case", CASES)
def test_three_modalities_train_or_are_refused_with_a_config_error(case: str) -> None:
    spec = _spec("vectors", ("a", "b", "c"))
    try:
        method = _build(case, spec)
    except ConfigError:
        pytest.skip(f"{case} does not take three modalities")
    encoders = _encoders(spec, "vectors")
    method.on_epoch_start(8, 10)
    output, terms = _step(method, encoders, _batch(spec, absent=True))
    assert all(bool(torch.isfinite(v).all()) for v in terms.values())
    assert output.weights.shape == (BATCH, 3)


# --------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize(("case", "kind"), KIND_CASES)
def test_a_state_dict_round_trip_gives_the_same_evaluation_outputs(case: str, kind: str) -> None:
    spec = _spec(kind)
    trained, encoders = _build(case, spec), _encoders(spec, kind)
    optimiser = torch.optim.SGD([*trained.parameters(), *encoders.parameters()], lr=0.05)
    for epoch in (0, 8):
        trained.on_epoch_start(epoch, 10)
        _step(trained, encoders, _batch(spec, seed=epoch), optimiser)
    batch = _batch(spec, seed=5, absent=True)
    expected = _evaluate(trained, encoders, batch)
    fresh = _build(case, spec, seed=1)  # other initial weights; no hooks called
    fresh.load_state_dict(trained.state_dict())
    got = _evaluate(fresh, encoders, batch)
    torch.testing.assert_close(got.logits, expected.logits)
    torch.testing.assert_close(got.weights, expected.weights)


# ------------------------------------------------------------------------------ absent modalities
@pytest.mark.parametrize(("case", "kind"), KIND_CASES)
def test_absent_modalities_get_weight_zero_and_cannot_change_the_prediction(
    case: str, kind: str
) -> None:
    spec = _spec(kind)
    method, encoders = _build(case, spec), _encoders(spec, kind)
    method.on_epoch_start(8, 10)
    _step(method, encoders, _batch(spec, seed=1))
    batch = _batch(spec, seed=2, absent=True)
    out = _evaluate(method, encoders, batch)
    mask = batch.present_matrix()
    assert bool(torch.isfinite(out.logits).all())
    assert torch.equal(out.weights[~mask], torch.zeros_like(out.weights[~mask]))
    sums = out.weights.sum(dim=1)
    if case in ABSTAINS:
        assert bool(((sums - 1).abs().lt(1e-5) | sums.eq(0)).all()), sums
    else:
        torch.testing.assert_close(sums, torch.ones(BATCH))
    # Garbage features where a modality is absent leave those samples' predictions unchanged.
    method.eval()
    features = method.encode(encoders, batch.inputs)
    garbage = {
        m: torch.where(batch.present[m].view(-1, *[1] * (f.dim() - 1)), f, torch.full_like(f, 7.0))
        for m, f in features.items()
    }
    with torch.no_grad():
        torch.manual_seed(0)
        clean = method(features, batch.present)
        torch.manual_seed(0)
        dirty = method(garbage, batch.present)
    rows = ~mask.all(dim=1)
    torch.testing.assert_close(dirty.logits[rows], clean.logits[rows])


# ---------------------------------------------------------------------------------- weight swaps
@pytest.mark.parametrize("case", CASES)
def test_weight_swaps_uniform_oracle_and_back(case: str) -> None:
    spec = _spec("vectors")
    method, encoders = _build(case, spec), _encoders(spec, "vectors")
    if not _dynamic(method):
        pytest.skip(f"{case} has no dynamic weights")
    method.on_epoch_start(8, 10)
    _step(method, encoders, _batch(spec, seed=1))
    batch = _batch(spec, seed=2, absent=True)
    mask = batch.present_matrix()
    learned = _evaluate(method, encoders, batch)
    uniform_weights = mask.float() / mask.sum(dim=1, keepdim=True)
    method.set_weight_mode("uniform")
    assert method.effective_weight_mode() == "uniform"
    torch.testing.assert_close(_evaluate(method, encoders, batch).weights, uniform_weights)
    corrupted = torch.zeros_like(mask)
    corrupted[:, 0] = True  # the first modality is corrupted in every sample
    method.set_weight_mode("oracle", corrupted)
    oracle = _evaluate(method, encoders, batch).weights
    both = mask.all(dim=1)  # samples where the clean modality is there to take the weight
    torch.testing.assert_close(oracle[both], torch.tensor([[0.0, 1.0]]).expand(int(both.sum()), 2))
    torch.testing.assert_close(oracle[~both], uniform_weights[~both])
    method.set_weight_mode("learned")
    again = _evaluate(method, encoders, batch)
    torch.testing.assert_close(again.logits, learned.logits)
    torch.testing.assert_close(again.weights, learned.weights)


@pytest.mark.parametrize("case", CASES)
def test_the_uniform_twin_trains_with_uniform_weights(case: str) -> None:
    spec = _spec("vectors")
    dynamic = [p for p in case.split("+") if getattr(METHODS.get(p), "has_dynamic_weights", False)]
    if not dynamic:
        pytest.skip(f"{case} has no dynamic weights")
    method = _build(case, spec, **{part: {"weights": "uniform"} for part in dynamic})
    encoders = _encoders(spec, "vectors")
    method.on_epoch_start(8, 10)
    batch = _batch(spec, seed=1, absent=True)
    mask = batch.present_matrix()
    output, _ = _step(method, encoders, batch)
    if "modality_dropout" not in case:  # modality dropout changes the presence in training
        torch.testing.assert_close(output.weights, mask.float() / mask.sum(1, keepdim=True))
    evaluated = _evaluate(method, encoders, batch)
    torch.testing.assert_close(evaluated.weights, mask.float() / mask.sum(1, keepdim=True))


# ------------------------------------------------------------------------------------------ DDP
@pytest.mark.parametrize(("case", "kind"), KIND_CASES)
def test_ddp_a_replica_with_the_synchronised_state_takes_the_same_step(
    case: str, kind: str
) -> None:
    """Two "ranks" train on different data; the second then receives the first's parameters and
    buffers (DDP averages gradients, so parameters agree, and broadcasts rank 0's buffers), and
    both take the next step on the same batch: the losses, gradients and buffers must agree, so no
    state that drives training lives in plain Python attributes."""
    spec = _spec(kind)
    rank0, rank1 = _build(case, spec), _build(case, spec, seed=1)
    enc0, enc1 = _encoders(spec, kind), _encoders(spec, kind)
    for name, buffer in rank0.named_buffers():
        assert buffer.dtype.is_floating_point or buffer.dtype in (
            torch.bool,
            torch.uint8,
            torch.int8,
            torch.int16,
            torch.int32,
            torch.int64,
        ), f"{name}: {buffer.dtype} cannot be broadcast"
    rank1.load_state_dict(rank0.state_dict())
    enc1.load_state_dict(enc0.state_dict())
    for epoch, seeds in ((0, (1, 2)), (8, (3, 4))):
        for method, seed in ((rank0, seeds[0]), (rank1, seeds[1])):
            method.on_epoch_start(epoch, 10)
            torch.manual_seed(seed)
            _step(method, enc0 if method is rank0 else enc1, _batch(spec, seed=seed))
    rank1.load_state_dict(rank0.state_dict())
    enc1.load_state_dict(enc0.state_dict())
    results = []
    for method, encoders in ((rank0, enc0), (rank1, enc1)):
        torch.manual_seed(7)
        output, terms = _step(method, encoders, _batch(spec, seed=9))
        grads = {
            n: p.grad.clone()
            for n, p in [*method.named_parameters(), *encoders.named_parameters()]
            if p.grad is not None
        }
        results.append((output.logits.detach(), terms, grads, dict(method.state_dict())))
    (logits0, terms0, grads0, state0), (logits1, terms1, grads1, state1) = results
    torch.testing.assert_close(logits1, logits0)
    assert set(terms1) == set(terms0)
    for name in terms0:
        torch.testing.assert_close(terms1[name], terms0[name], msg=name)
    assert set(grads1) == set(grads0)
    for name in grads0:
        torch.testing.assert_close(grads1[name], grads0[name], msg=name)
    for name in state0:
        torch.testing.assert_close(state1[name], state0[name], msg=name)


# -------------------------------------------------------------------------------------- wrappers
def _hooks() -> set[str]:
    """Every overridable hook of :class:`Method` (public methods defined there)."""
    return {
        name
        for name, value in vars(Method).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or isinstance(value, classmethod))
    }


def test_the_wrapper_base_forwards_every_hook() -> None:
    """A hook added to Method must be forwarded by WrapperMethod (the recipe, a class method, is
    merged per part by the training configuration instead)."""
    assert _hooks() - set(vars(WrapperMethod)) == {"training_defaults"}


class _Recorder(Method):
    """An inner method that records the hooks it receives and answers each distinctly."""

    wants_spatial_features = True
    has_dynamic_weights = True

    def __init__(self, spec: MethodSpec) -> None:
        super().__init__(spec)
        self.linear = nn.Linear(sum(spec.feature_dims.values()), spec.num_classes)
        self.calls: list[str] = []

    def forward(
        self, features: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> FusionOutput:
        self.calls.append("forward")
        pooled = [f.flatten(2).mean(2) if f.dim() > 2 else f for f in features.values()]
        weights = torch.full((pooled[0].shape[0], len(self.modalities)), 1 / len(self.modalities))
        return FusionOutput(self.linear(torch.cat(pooled, 1)), weights, self.modalities)

    def encode(
        self, encoders: Mapping[str, nn.Module], inputs: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        self.calls.append("encode")
        return super().encode(encoders, inputs)

    def losses(self, output: FusionOutput, batch: Batch) -> dict[str, Tensor]:
        self.calls.append("losses")
        return {"inner": output.logits.square().mean()}

    def prepare_batch(self, batch: Batch, training: bool) -> Batch:
        self.calls.append(f"prepare_batch:{training}")
        return batch

    def after_backward(self, encoders: nn.ModuleDict) -> None:
        self.calls.append("after_backward")

    def on_epoch_start(self, epoch: int, max_epochs: int) -> None:
        self.calls.append(f"on_epoch_start:{epoch}")

    def lr_scale(self, epoch: int, max_epochs: int) -> float:
        return 0.25

    def logged_values(self) -> dict[str, float]:
        return {"inner_value": 3.0}

    def selectable_epoch(self, epoch: int, max_epochs: int) -> bool:
        return epoch >= 7

    def set_weight_mode(self, mode: str, corrupted: Tensor | None = None) -> None:
        self.calls.append(f"set_weight_mode:{mode}")
        super().set_weight_mode(mode, corrupted)


@pytest.mark.parametrize(
    "outer", [e.name for e in METHODS if getattr(e.factory, "composable", False)]
)
def test_wrappers_forward_every_hook_to_the_inner_method(outer: str) -> None:
    spec = _spec("vectors")
    inner = _Recorder(spec)
    method = METHODS.get(outer)(spec, inner=inner)
    assert isinstance(method, WrapperMethod) and method.inner is inner
    assert method.wants_spatial_features and method.has_dynamic_weights
    encoders = _encoders(spec, "vectors")
    method.on_epoch_start(2, 10)
    _, terms = _step(method, encoders, _batch(spec))
    assert inner.calls == [
        "on_epoch_start:2",
        "prepare_batch:True",
        "encode",
        "forward",
        "losses",
        "after_backward",
    ]
    assert "inner" in terms
    assert method.lr_scale(0, 10) == 0.25
    assert method.logged_values()["inner_value"] == 3.0
    assert [method.selectable_epoch(e, 10) for e in (6, 7)] == [False, True]
    method.set_weight_mode("uniform")
    assert inner.calls[-1] == "set_weight_mode:uniform"
    assert method.effective_weight_mode() == inner.effective_weight_mode() == "uniform"
    inner.trained_weights = "uniform"
    method.set_weight_mode("learned")
    assert method.effective_weight_mode() == "uniform"  # the inner's twin, not the wrapper's
    method.eval()
    inner.calls.clear()
    assert method.prepare_batch(_batch(spec), training=False) is not None
    assert inner.calls == ["prepare_batch:False"]
