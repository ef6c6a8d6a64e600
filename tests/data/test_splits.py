"""Stratified, seeded splits."""

from collections import Counter

from galcnn.data.inputs import Source
from galcnn.data.splits import assign_splits


def _labelled(counts: dict[str, int]) -> dict[Source, str]:
    labels = {}
    for name, n in counts.items():
        for i in range(n):
            labels[Source(f"{name}{i}", (f"{name}{i}.fits",), ".")] = name
    return labels


def test_each_class_split_in_proportion_and_seeded():
    labels = _labelled({"a": 40, "b": 20, "c": 1, "d": 2})
    splits = assign_splits(list(labels), labels, val_fraction=0.25, test_fraction=0.1, seed=4)
    count = Counter((labels[s], split) for s, split in splits.items())
    assert (count["a", "val"], count["a", "test"], count["a", "train"]) == (10, 4, 26)
    assert (count["b", "val"], count["b", "test"]) == (5, 2)
    assert count["c", "train"] == 1 and count["d", "val"] == 1  # at least one to validate
    again = assign_splits(list(labels), labels, val_fraction=0.25, test_fraction=0.1, seed=4)
    other = assign_splits(list(labels), labels, val_fraction=0.25, test_fraction=0.1, seed=5)
    assert again == splits and other != splits


def test_no_labels_means_unlabelled():
    sources = list(_labelled({"a": 3}))
    assert set(assign_splits(sources, None, val_fraction=0.5).values()) == {"unlabelled"}
