"""Lightning DataModule over :class:`~robustfusion.data.DataSplits`, with seeded shuffling."""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import torch
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


class MultimodalDataModule(L.LightningDataModule):
    """Train/val/test loaders; datasets with ``__getitems__`` are fetched a whole batch at once."""

    def __init__(
        self,
        splits: DataSplits,
        batch_size: int,
        eval_batch_size: int,
        seed: int,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.splits = splits
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.num_workers = num_workers

    def _loader(
        self, dataset: MultimodalDataset, batch_size: int, sampler: Sampler[int] | None
    ) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            # the loader's own generator: creating an iterator must not consume the global RNG
            generator=torch.Generator().manual_seed(self.seed),
        )

    def transfer_batch_to_device(
        self, batch: Batch, device: torch.device, dataloader_idx: int
    ) -> Batch:
        return batch.to(device)

    def train_dataloader(self) -> DataLoader:
        sampler = EpochSeededSampler(len(self.splits.train), self.seed)
        return self._loader(self.splits.train, self.batch_size, sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.splits.val, self.eval_batch_size, None)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.splits.test, self.eval_batch_size, None)
