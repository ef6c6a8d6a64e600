"""The classify and segment plug-ins of the training loop."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
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
    with pytest.raises(TrainError, match="arch unet cannot classify"):
        train(plain, str(tmp_path / "run"), TrainOptions(arch="unet", epochs=1))


def test_calibration_only_where_the_validation_split_supports_it():
    from galcnn.stages.train.tasks import calibrate

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 16)
    sure = np.eye(3)[labels] * 8.0  # 16 samples, all correct
    small = calibrate(sure, labels)
    assert not small["fitted"] and small["temperature"] == 1.0
    assert small["note"].startswith("not fitted: 16 validation samples with 0 errors")
    labels = rng.integers(0, 3, 300)
    guesses = np.where(rng.random(300) < 0.7, labels, (labels + 1) % 3)
    overconfident = np.eye(3)[guesses] * 8.0  # wrong 30 % of the time, always sure
    fitted = calibrate(overconfident, labels)
    assert fitted["fitted"] and fitted["temperature"] > 2.0 and fitted["errors"] > 60


def test_a_small_validation_split_leaves_the_beliefs_uncalibrated(simulated, tmp_path):
    from click.testing import CliRunner

    from galcnn.cli import cli

    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--data", simulated, "--out", str(run),
                                      "--epochs", "1", "--width", "8", "--batch-size", "16"])
    assert result.exit_code == 0, result.output
    card = load_checkpoint(str(run))["card"]
    assert card.temperature == 1.0 and not card.calibration["fitted"]
    assert card.calibration["n"] == 32
    assert "temperature not fitted: 32 validation samples" in " ".join(result.output.split())
