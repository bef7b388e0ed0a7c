"""Lightning DataModule over :class:`~robustfusion.data.DataSplits`, with seeded shuffling.

On a CUDA accelerator batches are collated into page-locked (pinned) memory by the loader's
pin-memory thread and copied to the device with ``non_blocking=True``, so the copy of one batch
overlaps the computation of the previous one. On the CPU nothing is pinned or copied.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from robustfusion.data import DataSplits, MultimodalDataset, collate
from robustfusion.training.seeding import epoch_seed
from robustfusion.types import Batch


class EpochSeededSampler(Sampler[int]):
    """A random permutation drawn from ``(seed, epoch)`` alone.

    Lightning calls :meth:`set_epoch` before every epoch (and wraps this sampler for DDP), so
    the order of epoch ``k`` is the same whether or not the run was resumed.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


@dataclass
class PinnableBatch(Batch):
    """A :class:`Batch` that ``DataLoader(pin_memory=True)`` can pin (it calls ``pin_memory()``)."""

    def pin_memory(self) -> Batch:
        def pin(values: dict[str, Tensor]) -> dict[str, Tensor]:
            return {k: v.pin_memory() for k, v in values.items()}

        return Batch(
            inputs=pin(self.inputs),
            present=pin(self.present),
            target=self.target.pin_memory(),
            index=self.index.pin_memory(),
            noise_level=pin(self.noise_level),
            corrupted=pin(self.corrupted),
        )


def collate_pinnable(samples: Sequence[dict[str, Any]] | Batch) -> PinnableBatch:
    """:func:`~robustfusion.data.collate`, returning a :class:`PinnableBatch`."""
    batch = collate(samples)
    return PinnableBatch(**{f.name: getattr(batch, f.name) for f in fields(Batch)})


class MultimodalDataModule(L.LightningDataModule):
    """Train/val/test loaders; datasets with ``__getitems__`` are fetched a whole batch at once.

    ``pin_memory``: ``None`` (default) pins when the attached trainer runs on a CUDA device.
    """

    def __init__(
        self,
        splits: DataSplits,
        batch_size: int,
        eval_batch_size: int,
        seed: int,
        num_workers: int = 0,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__()
        self.splits = splits
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.pin_memory = pin_memory

    def _pins(self) -> bool:
        if self.pin_memory is not None:
            return bool(self.pin_memory) and torch.cuda.is_available()
        trainer = getattr(self, "trainer", None)
        device = getattr(getattr(trainer, "strategy", None), "root_device", None)
        return device is not None and device.type == "cuda"

    def _loader(
        self, dataset: MultimodalDataset, batch_size: int, sampler: Sampler[int] | None
    ) -> DataLoader:
        pin = self._pins()
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            collate_fn=collate_pinnable if pin else collate,
            pin_memory=pin,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # the loader's own generator: creating an iterator must not consume the global RNG
            generator=torch.Generator().manual_seed(self.seed),
        )

    def transfer_batch_to_device(
        self, batch: Batch, device: torch.device, dataloader_idx: int
    ) -> Batch:
        return batch.to(device, non_blocking=device.type == "cuda")

    def train_dataloader(self) -> DataLoader:
        sampler = EpochSeededSampler(len(self.splits.train), self.seed)
        return self._loader(self.splits.train, self.batch_size, sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.splits.val, self.eval_batch_size, None)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.splits.test, self.eval_batch_size, None)
