"""Per-sample loss weights from a label table's column (MiraBest's ``confident``)."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch
from torch.nn import functional as F

from galcnn.checkpoint import load_checkpoint
from galcnn.data.dataset import PreparedDataset
from galcnn.data.recipe import Preprocess
from galcnn.stages.prepare import PrepareOptions, prepare
from galcnn.stages.train import train
from galcnn.stages.train.tasks import ClassifyTask

from helpers import SAMPLE_DATA, tiny


def test_sample_weights_of_one_are_the_plain_loss_and_weight_zero_drops_a_sample():
    loss = ClassifyTask.loss
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    classes = torch.tensor([0.5, 1.0, 2.0])
    plain = F.cross_entropy(logits, targets, weight=classes, label_smoothing=0.05)
    ones = loss(None, logits, targets, classes, 0.05, torch.ones(6))
    torch.testing.assert_close(ones, plain)
    dropped = loss(None, logits, targets, classes, 0.05,
                   torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0]))
    torch.testing.assert_close(dropped, F.cross_entropy(logits[:5], targets[:5], weight=classes,
                                                        label_smoothing=0.05))


def _weighted_set(tmp_path, weight: str) -> str:
    table = tmp_path / "labels.csv"
    folder = os.path.join(SAMPLE_DATA, "simulated")
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "w"])
        for kind in ("elliptical", "edge_on"):
            for name in sorted(os.listdir(os.path.join(folder, kind))):
                writer.writerow([os.path.join(folder, kind, name), kind, weight])
    out = str(tmp_path / "prepared")
    prepare([os.path.join(folder, "elliptical"), os.path.join(folder, "edge_on")], out,
            labels=str(table), options=PrepareOptions(Preprocess(size=(32, 32)),
                                                      weight_column="w"), workers=1)
    return out


@pytest.mark.slow
def test_training_samples_weighted_zero_teach_nothing(tmp_path):
    """All weights 0: the loss the run records is 0 (the weighted loss ran), and the card
    says which column weighted the samples."""
    data = _weighted_set(tmp_path, "0")
    assert PreparedDataset(data, "train").weights.tolist() == [0.0] * len(
        PreparedDataset(data, "train"))
    run = str(tmp_path / "run")
    train(data, run, tiny(epochs=1))
    with open(os.path.join(run, "metrics.csv")) as handle:
        assert float(next(csv.DictReader(handle))["train_loss"]) == 0.0
    card = load_checkpoint(run)["card"]
    assert card.training["data"]["sample_weights"] == {"column": "w", "map": {}, "mean": 0.0}
    assert json.load(open(os.path.join(data, "metadata.json")))["labels"]["weights"]["column"] \
        == "w"


def test_a_set_prepared_before_weights_reads_as_weight_one(simulated, tmp_path):
    import shutil

    old = str(tmp_path / "old")
    shutil.copytree(simulated, old)
    with open(os.path.join(old, "manifest.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(os.path.join(old, "manifest.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, [c for c in rows[0] if c != "weight"],
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    data = PreparedDataset(old, "train")
    assert "weight" not in open(os.path.join(old, "manifest.csv")).readline()
    assert data.weights.tolist() == [1.0] * len(data)
