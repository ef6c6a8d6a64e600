"""The classify and segment plug-ins of the training loop."""

from __future__ import annotations

import csv
import json
import os

import pytest

from galcnn.checkpoint import load_checkpoint
from galcnn.data.recipe import Preprocess
from galcnn.stages.prepare import PrepareOptions, prepare
from galcnn.stages.train import TrainError, TrainOptions, train

from helpers import SAMPLE_DATA


def test_train_segment_writes_a_unet_run(unet, masked):
    card = load_checkpoint(unet)["card"]
    assert card.task == "segment" and card.model == "unet"
    assert card.classes == ["background", "edge_on", "elliptical", "spiral_acw", "spiral_cw",
                            "other"]
    assert card.symmetry == "dihedral" and card.mirror_swap == [0, 1, 2, 4, 3, 5]
    metrics = json.load(open(os.path.join(unet, "metrics.json")))
    assert set(metrics["per_class"]) == set(card.classes)
    assert metrics["n_pixels"] == 32 * 32 * 32 and 0 <= metrics["mean_iou"] <= 1
    with open(os.path.join(unet, "metrics.csv")) as handle:
        assert "val_mean_iou" in next(csv.reader(handle))


def test_train_segment_needs_masks(tmp_path):
    plain = str(tmp_path / "plain")
    prepare([os.path.join(SAMPLE_DATA, "simulated")], plain,
            options=PrepareOptions(Preprocess(size=(16, 16))), workers=1)
    with pytest.raises(TrainError, match="holds no masks; prepare it with --masks auto"):
        train(plain, str(tmp_path / "run"), TrainOptions(task="segment", epochs=1))
    with pytest.raises(TrainError, match="--arch unet cannot classify"):
        train(plain, str(tmp_path / "run"), TrainOptions(arch="unet", epochs=1))
