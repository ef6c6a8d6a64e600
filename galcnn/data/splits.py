"""Stratified, seeded assignment of labelled objects to train, validation and test splits."""

from __future__ import annotations

import numpy as np

from galcnn.data.inputs import Source

__all__ = ["SPLITS", "assign_splits"]

SPLITS = ("train", "val", "test", "unlabelled")


def assign_splits(sources: list[Source], labels: dict[Source, str] | None, *,
                  val_fraction: float, test_fraction: float = 0.0, seed: int = 0
                  ) -> dict[Source, str]:
    """Each class is split in the same proportions (at least one validation object per class
    of two or more when ``val_fraction`` > 0); without labels everything is ``unlabelled``."""
    if labels is None:
        return {s: "unlabelled" for s in sources}
    rng = np.random.default_rng(seed)
    splits = {}
    by_class: dict[str, list[Source]] = {}
    for source in sources:
        if source in labels:
            by_class.setdefault(labels[source], []).append(source)
    for name in sorted(by_class):
        members = by_class[name]
        order = rng.permutation(len(members))
        n_val = int(round(val_fraction * len(members)))
        n_test = int(round(test_fraction * len(members)))
        if val_fraction > 0 and n_val == 0 and len(members) >= 2:
            n_val = 1
        for rank, position in enumerate(order):
            split = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
            splits[members[position]] = split
    return splits
