"""Run-directory plots: readable axes, named splits, the best epoch, what is counted."""

import os

import numpy as np

from galcnn.plots import plot_confusion, plot_learning_curves

HISTORY = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_accuracy": 1.0,
            "val_accuracy": 0.6, "val_mean_iou": 0.4} for e in (1, 2, 3, 4, 5)]


def test_learning_curves_show_lines_at_one_the_best_epoch_and_the_splits(tmp_path):
    fig = plot_learning_curves(HISTORY, str(tmp_path / "curves.png"), best_epoch=3,
                               loss_name="cross-entropy + Dice")
    loss, scores = fig.axes
    assert scores.get_ylim()[1] > 1.0 and scores.get_ylim()[0] < 0.0
    assert loss.get_ylabel() == "cross-entropy + Dice loss"
    labels = [line.get_label() for line in scores.get_lines()]
    assert "accuracy, training split" in labels and "mean IoU, validation split" in labels
    assert "best epoch (3)" in labels
    assert all(float(t).is_integer() for t in loss.get_xticks())
    assert open(tmp_path / "curves.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_confusion_title_says_the_split_and_what_is_counted(tmp_path):
    fig = plot_confusion(np.array([[3, 1], [0, 4]]), ["a", "b"], str(tmp_path / "cm.png"),
                         title="Validation split, best epoch: pixels")
    assert fig.axes[0].get_title().startswith("Validation split, best epoch: pixels")
    assert sorted(os.listdir(tmp_path)) == ["cm.png"]
