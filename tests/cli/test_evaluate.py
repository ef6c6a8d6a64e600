"""``galcnn evaluate`` on the command line: tables, JSON, failures."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
from click.testing import CliRunner

from galcnn.cli import cli
from galcnn.cli.main import EXIT_SOME_FAILED

from helpers import SAMPLE_DATA


def test_raw_cutouts_tables_and_json(classifier, tmp_path):
    raw = tmp_path / "cutouts"
    for kind in ("elliptical", "edge_on"):
        shutil.copytree(os.path.join(SAMPLE_DATA, "simulated", kind), raw / kind)
    out = tmp_path / "metrics.json"
    result = CliRunner().invoke(cli, ["evaluate", classifier, str(raw), "--json", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.load(open(out))
    assert metrics["n"] == 60 and metrics["split"] == "all" and metrics["tta"] is True
    assert np.array(metrics["confusion_matrix"]).sum() == 60
    lines = result.output.splitlines()
    assert any(line.startswith("accuracy") for line in lines)
    assert "Confusion matrix (rows: true class)" in result.output
    confusion = lines[next(i for i, line in enumerate(lines) if "Confusion matrix" in line):]
    row = next(line for line in confusion if line.startswith("│ elliptical"))
    assert sum(int(v) for v in row.split("│")[2:6]) == 30


def test_prepared_split_and_failed_files(classifier, simulated, tmp_path):
    result = CliRunner().invoke(cli, ["evaluate", classifier, simulated, "--split", "val"])
    assert result.exit_code == 0 and "split val" in result.output
    raw = tmp_path / "cutouts"
    for kind in ("elliptical", "edge_on"):
        shutil.copytree(os.path.join(SAMPLE_DATA, "simulated", kind), raw / kind)
    (raw / "edge_on" / "empty.fits").write_bytes(b"")
    result = CliRunner().invoke(cli, ["evaluate", classifier, str(raw)])
    assert result.exit_code == EXIT_SOME_FAILED
    assert f"galcnn evaluate: {raw / 'edge_on' / 'empty.fits'}: empty file (0 bytes)" in \
        result.output
