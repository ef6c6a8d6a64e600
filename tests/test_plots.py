"""Run-directory plots are written whole."""

import os

import numpy as np

from galcnn.plots import plot_confusion, plot_learning_curves


def test_plots_are_png_files(tmp_path):
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_accuracy": 0.5,
                "val_accuracy": 0.6, "val_macro_f1": 0.4} for e in (1, 2, 3)]
    plot_learning_curves(history, str(tmp_path / "curves.png"))
    plot_confusion(np.array([[3, 1], [0, 4]]), ["a", "b"], str(tmp_path / "cm.png"))
    for name in ("curves.png", "cm.png"):
        assert open(tmp_path / name, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path)) == ["cm.png", "curves.png"]
