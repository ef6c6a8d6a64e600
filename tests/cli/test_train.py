"""``galcnn train`` and ``galcnn evaluate`` on the command line."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
from click.testing import CliRunner

from galcnn.checkpoint import load_checkpoint
from galcnn.cli import cli

from helpers import SAMPLE_DATA


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


def test_cli_usage_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                                 "--mirror-pairs", "spiral_cw"])
    assert result.exit_code == 2 and "write A:B" in result.output
    result = runner.invoke(cli, ["train", "--data", str(tmp_path / "missing"), "--out", "r"])
    assert result.exit_code == 2
