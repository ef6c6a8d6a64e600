"""Batches for training: whole batches gathered from memory-mapped shards, class balance."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from galcnn.data.dataset import PreparedDataset
from galcnn.distributed import Distributed

__all__ = ["class_weights_for", "BalancedSampler", "SkippingBatchSampler", "make_loader"]


def class_weights_for(counts: np.ndarray, mode: str) -> torch.Tensor | None:
    """``auto``: weights proportional to 1/sqrt(frequency), mean 1 over samples.

    Full inverse-frequency weights over-correct (the rare classes' few examples dominate and
    accuracy on the common ones collapses); the square root keeps rare classes visible.
    """
    if mode == "none":
        return None
    counts = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    weights = 1.0 / np.sqrt(counts)
    weights *= counts.sum() / (weights * counts).sum()
    return torch.tensor(weights, dtype=torch.float32)


class _Batches(torch.utils.data.Dataset):
    """A dataset whose items are whole batches: images read with one gather per shard, the
    targets a task makes of them (labels, or per-pixel class maps) and each sample's loss
    weight."""

    def __init__(self, data: PreparedDataset,
                 targets: Callable[[PreparedDataset, np.ndarray], np.ndarray]):
        self.data, self.targets = data, targets
        self.weights = torch.from_numpy(data.weights)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, indices):
        images, _ = self.data.batch(indices)
        return (torch.from_numpy(images),
                torch.from_numpy(self.targets(self.data, np.asarray(indices))),
                self.weights[torch.as_tensor(np.asarray(indices), dtype=torch.long)])


class BalancedSampler(torch.utils.data.Sampler):
    """Class-balanced sampling with replacement, the same epoch length, split over ranks."""

    def __init__(self, labels: np.ndarray, seed: int, dist_info: Distributed):
        counts = np.bincount(labels, minlength=labels.max() + 1).astype(np.float64)
        self.weights = torch.tensor(1.0 / counts[labels])
        self.seed, self.dist, self.epoch = seed, dist_info, 0
        self.n = math.ceil(len(labels) / dist_info.world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        total = self.n * self.dist.world_size
        chosen = torch.multinomial(self.weights, total, replacement=True, generator=generator)
        return iter(chosen[self.dist.rank::self.dist.world_size].tolist())


class SkippingBatchSampler(torch.utils.data.BatchSampler):
    """Batches of indices; ``skip`` leading batches of the next epoch are passed over (their
    indices only: nothing is read), so a run stopped mid-epoch resumes at the next batch."""

    skip = 0

    def __iter__(self):
        skip, self.skip = self.skip, 0
        for number, batch in enumerate(super().__iter__()):
            if number >= skip:
                yield batch


def make_loader(data: PreparedDataset, targets, *, balanced: bool, batch_size: int, seed: int,
                dist_info: Distributed, workers: int, device: torch.device
                ) -> tuple[torch.utils.data.DataLoader, torch.utils.data.Sampler]:
    """A loader of this rank's share of shuffled (or class-balanced) batches, and its sampler
    (whose ``set_epoch`` reseeds the order)."""
    if balanced:
        sampler = BalancedSampler(data.labels, seed, dist_info)
    else:
        sampler = torch.utils.data.DistributedSampler(
            range(len(data)), num_replicas=dist_info.world_size, rank=dist_info.rank,
            shuffle=True, seed=seed)
    per_rank = max(1, batch_size // dist_info.world_size)
    batches = SkippingBatchSampler(sampler, per_rank, drop_last=len(sampler) > per_rank)
    loader = torch.utils.data.DataLoader(_Batches(data, targets), sampler=batches,
                                         batch_size=None, num_workers=workers,
                                         pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0)
    return loader, sampler
