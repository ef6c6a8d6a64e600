"""What a run directory holds besides checkpoints."""

from __future__ import annotations

import csv
import os

import pytest

from galcnn.stages.train import TrainError
from galcnn.stages.train.run_dir import check_run_dir, metric_columns, write_history


def test_history_columns_follow_the_task(tmp_path):
    row = {"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.75, "val_loss": 0.6,
           "val_accuracy": 0.7, "val_mean_iou": 0.4, "lr": 1e-3, "images_per_s": 100.0,
           "seconds": 2.0}
    write_history(str(tmp_path), [row], "val_mean_iou")
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert list(rows[0]) == list(metric_columns("val_mean_iou"))
    assert rows[0]["val_mean_iou"] == "0.4" and rows[0]["epoch"] == "1"


def test_a_run_is_kept_unless_resumed_or_overwritten(tmp_path):
    (tmp_path / "last.pt").write_text("")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(TrainError, match="already holds a run; use --resume"):
        check_run_dir(str(tmp_path), resume=False, overwrite=False)
    check_run_dir(str(tmp_path), resume=True, overwrite=False)
    check_run_dir(str(tmp_path), resume=False, overwrite=True)
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_an_ensembles_members_are_a_run_and_go_with_overwrite(tmp_path):
    (tmp_path / "members" / "1").mkdir(parents=True)  # stopped during its first member
    (tmp_path / "members" / "1" / "last.pt").write_text("")
    with pytest.raises(TrainError, match="already holds a run; use --resume"):
        check_run_dir(str(tmp_path), resume=False, overwrite=False)
    check_run_dir(str(tmp_path), resume=False, overwrite=True)
    assert os.listdir(tmp_path) == []
