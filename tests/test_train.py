"""End-to-end training on tiny data: run directory, checkpoints, resume, fine-tuning, evaluate."""

from __future__ import annotations

import csv
import json
import os
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from galcnn.checkpoint import CheckpointError, load_checkpoint, load_model
from galcnn.cli import cli
from galcnn.data.dataset import PreparedDataset
from galcnn.data.recipe import Preprocess
from galcnn.stages.prepare import PrepareOptions, prepare
from galcnn.inference import dataset_logits
from galcnn.stages.train import TrainError, TrainOptions, class_weights_for, train

from conftest import SAMPLE_DATA

def tiny(**changes) -> TrainOptions:
    """Options that train in about a second on the 120 simulated cutouts."""
    return TrainOptions(**{"width": 8, "batch_size": 16, "epochs": 2, "warmup_epochs": 0.5,
                           **changes})


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """The sample simulated cutouts prepared at 32 px (4 classes, spiral_cw/acw a mirror pair)."""
    out = str(tmp_path_factory.mktemp("prep") / "sim")
    prepare([os.path.join(SAMPLE_DATA, "simulated")], out,
            options=PrepareOptions(Preprocess(size=(32, 32)), val_fraction=0.25), workers=1)
    return out


def test_run_directory_is_complete(simulated, tmp_path):
    run = str(tmp_path / "run")
    result = train(simulated, run, tiny())
    assert result.epochs_run == 2 and result.classes == ["edge_on", "elliptical", "spiral_acw",
                                                         "spiral_cw"]
    for name in ("best.pt", "last.pt", "config.json", "metrics.csv", "metrics.json",
                 "learning_curves.png", "confusion_matrix.png"):
        assert os.path.getsize(os.path.join(run, name)) > 0, name
    with open(os.path.join(run, "metrics.csv")) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert 0 <= float(rows[-1]["val_accuracy"]) <= 1 and float(rows[-1]["images_per_s"]) > 0
    metrics = json.load(open(os.path.join(run, "metrics.json")))
    assert metrics["n"] == 32 and len(metrics["confusion_matrix"]) == 4
    assert sum(map(sum, metrics["confusion_matrix"])) == 32
    assert set(metrics["per_class"]) == set(result.classes)
    assert metrics["temperature"] > 0 and 0 <= metrics["ece_after"] <= 1
    card = load_checkpoint(run)["card"]
    assert card.symmetry == "dihedral" and card.mirror_pairs == [("spiral_cw", "spiral_acw")]
    assert card.preprocess.size == (32, 32) and card.preprocess.n_bands == 1
    assert card.preprocess.stretch.name == "asinh" and card.temperature == metrics["temperature"]
    assert len(card.elements) == 8 and card.mirror_swap == [0, 1, 3, 2]
    config = json.load(open(os.path.join(run, "config.json")))
    assert config["options"]["epochs"] == 2 and config["device"] == "cpu"


def test_checkpoint_rebuilds_the_same_model(simulated, tmp_path):
    run = str(tmp_path / "run")
    train(simulated, run, tiny(epochs=1))
    model = load_model(run)
    data = PreparedDataset(simulated, "val")
    logits, labels = dataset_logits(model, data, torch.device("cpu"))
    again = load_model(os.path.join(run, "best.pt"))
    logits2, _ = dataset_logits(again, data, torch.device("cpu"))
    np.testing.assert_array_equal(logits, logits2)
    assert logits.shape == (32, 4) and np.isfinite(logits).all()


def test_resume_after_a_kill_equals_an_uninterrupted_run(simulated, tmp_path):
    options = tiny(epochs=3, patience=99)
    whole = str(tmp_path / "whole")
    train(simulated, whole, options)

    class Killed(Exception):
        pass

    def kill_after_epoch_2(row):
        if row["epoch"] == 2:
            raise Killed

    broken = str(tmp_path / "broken")
    with pytest.raises(Killed):
        train(simulated, broken, options, on_epoch_end=kill_after_epoch_2)
    assert load_checkpoint(os.path.join(broken, "last.pt"))["trainer"]["epoch"] == 1
    train(simulated, broken, options, resume=True)
    a = load_checkpoint(os.path.join(whole, "last.pt"))
    b = load_checkpoint(os.path.join(broken, "last.pt"))
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert [r["val_loss"] for r in a["trainer"]["history"]] == \
        [r["val_loss"] for r in b["trainer"]["history"]]


def test_existing_run_is_not_overwritten_by_accident(simulated, tmp_path):
    run = str(tmp_path / "run")
    train(simulated, run, tiny(epochs=1))
    with pytest.raises(TrainError, match="already holds a run; use --resume"):
        train(simulated, run, tiny(epochs=1))
    with pytest.raises(TrainError, match="nothing to resume"):
        train(simulated, str(tmp_path / "new"), tiny(), resume=True)
    train(simulated, run, tiny(epochs=1), overwrite=True)


def test_fine_tuning_with_other_classes_gets_a_new_head(simulated, tmp_path):
    run = str(tmp_path / "run")
    train(simulated, run, tiny(epochs=1))
    two = str(tmp_path / "two")
    prepare([os.path.join(SAMPLE_DATA, "simulated")], two, classes=["elliptical", "edge_on"],
            options=PrepareOptions(Preprocess(size=(32, 32))), workers=1)
    tuned = str(tmp_path / "tuned")
    train(two, tuned, tiny(epochs=1, init_from=run, freeze=2, lr=1e-9,
                                   warmup_epochs=0))
    before = load_checkpoint(run)["model"]
    after = load_checkpoint(tuned)
    assert after["card"].classes == ["elliptical", "edge_on"]
    assert after["model"]["head.2.weight"].shape[0] == 2
    # frozen stem copied unchanged; BN running statistics are buffers, so compare weights
    assert torch.equal(before["features.0.0.weight"], after["model"]["features.0.0.weight"])


def test_class_weights_favour_rare_classes():
    weights = class_weights_for(np.array([900, 100, 25]), "auto").numpy()
    assert weights[0] < weights[1] < weights[2]
    np.testing.assert_allclose(weights[2] / weights[0], 6.0, rtol=1e-6)  # sqrt(900 / 25)
    np.testing.assert_allclose((weights * [900, 100, 25]).sum() / 1025, 1.0, rtol=1e-6)
    assert class_weights_for(np.array([5, 5]), "none") is None


def test_cli_train_on_raw_cutouts_then_evaluate(tmp_path):
    raw = tmp_path / "cutouts"
    for kind in ("elliptical", "edge_on"):
        shutil.copytree(os.path.join(SAMPLE_DATA, "simulated", kind), raw / kind)
    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--data", str(raw), "--out", str(run), "--epochs", "2",
                                 "--width", "8", "--size", "32", "--batch-size", "16"])
    assert result.exit_code == 0, result.output
    assert "Validation split, best epoch" in result.output and "macro-F1" in result.output
    meta = json.load(open(run / "prepared" / "metadata.json"))
    assert meta["preprocess"]["size"] == [32, 32] and meta["classes"] == ["edge_on", "elliptical"]
    card = load_checkpoint(str(run))["card"]
    assert card.symmetry == "rotate" and card.preprocess.size == (32, 32)

    out = tmp_path / "metrics.json"
    result = runner.invoke(cli, ["evaluate", str(run), str(raw), "--json", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.load(open(out))
    assert metrics["n"] == 60 and metrics["split"] == "all" and metrics["tta"] is True
    assert np.array(metrics["confusion_matrix"]).sum() == 60
    assert "accuracy" in result.output

    result = runner.invoke(cli, ["evaluate", str(run), str(run / "prepared"), "--split", "val"])
    assert result.exit_code == 0, result.output
    assert "split val" in result.output


def test_not_a_checkpoint_is_refused_clearly(tmp_path):
    text = tmp_path / "model.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a galcnn checkpoint \\(not a file written by torch.save"):
        load_checkpoint(str(text))
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="not a galcnn checkpoint"):
        load_checkpoint(str(other))
    result = CliRunner().invoke(cli, ["evaluate", str(other), str(tmp_path)])
    assert result.exit_code == 1
    assert "not a galcnn checkpoint" in result.output and "Traceback" not in result.output
    with pytest.raises(CheckpointError, match="holds no best.pt"):
        load_checkpoint(str(tmp_path))


def test_cli_usage_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                                 "--mirror-pairs", "spiral_cw"])
    assert result.exit_code == 2 and "write A:B" in result.output
    result = runner.invoke(cli, ["train", "--data", str(tmp_path / "missing"), "--out", "r"])
    assert result.exit_code == 2
