"""``galcnn train`` and ``galcnn evaluate`` on the command line."""

from __future__ import annotations

import json
import os
import shutil

from click.testing import CliRunner

from galcnn.checkpoint import load_checkpoint
from galcnn.cli import cli

from helpers import SAMPLE_DATA


def test_raw_cutouts_are_prepared_into_the_run(tmp_path):
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


def test_cli_usage_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                                 "--mirror-pairs", "spiral_cw"])
    assert result.exit_code == 2 and "write A:B" in result.output
    result = runner.invoke(cli, ["train", "--data", str(tmp_path / "missing"), "--out", "r"])
    assert result.exit_code == 2
