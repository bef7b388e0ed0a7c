import torch

from robustfusion.types import Batch


def make_batch() -> Batch:
    return Batch(
        inputs={"a": torch.randn(3, 4), "b": torch.randn(3, 2, 5, 5)},
        present={"a": torch.tensor([True, False, True]), "b": torch.ones(3, dtype=torch.bool)},
        target=torch.tensor([0, 1, 2]),
        index=torch.arange(3),
    )


def test_batch_properties_follow_modality_order() -> None:
    batch = make_batch()
    assert batch.modalities == ("a", "b")
    assert batch.batch_size == 3
    assert batch.present_matrix().tolist() == [[True, True], [False, True], [True, True]]


def test_replace_leaves_the_original_untouched() -> None:
    batch = make_batch()
    changed = batch.replace(target=torch.tensor([5, 5, 5]))
    assert batch.target.tolist() == [0, 1, 2]
    assert changed.target.tolist() == [5, 5, 5]
    assert changed.inputs is batch.inputs


def test_to_moves_every_tensor() -> None:
    batch = make_batch()
    batch.noise_level["a"] = torch.ones(3)
    moved = batch.to("cpu")
    assert moved.noise_level["a"].tolist() == [1.0, 1.0, 1.0]
    assert torch.equal(moved.inputs["b"], batch.inputs["b"])
