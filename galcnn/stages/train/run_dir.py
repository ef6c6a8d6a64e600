"""The run directory: what a training run writes besides its checkpoints.

``config.json`` (command, options, device), ``metrics.csv`` (one row per epoch),
``metrics.json`` (final metrics of ``best.pt``), ``learning_curves.png`` and
``confusion_matrix.png``. Every file is written whole or not at all.
"""

from __future__ import annotations

import os
import shutil

import numpy as np

from galcnn.data.atomic import make_directory, write_csv, write_json
from galcnn.plots import plot_confusion, plot_learning_curves
from galcnn.stages.train.options import TrainError

__all__ = ["RUN_FILES", "MEMBERS_DIR", "check_run_dir", "start_run_dir", "metric_columns",
           "write_config", "write_history", "write_results"]

RUN_FILES = ("last.pt", "best.pt", "config.json", "metrics.csv", "metrics.json")
MEMBERS_DIR = "members"
"""An ensemble's members' run directories (:mod:`galcnn.stages.train.ensemble`)."""


def check_run_dir(run_dir: str, resume: bool, overwrite: bool) -> None:
    """Refuse to train over a run (a model's, or an ensemble's members) unless resuming or
    ``overwrite`` (which clears it)."""
    if resume or not os.path.exists(run_dir):
        return
    if any(os.path.exists(os.path.join(run_dir, n)) for n in (*RUN_FILES[:3], MEMBERS_DIR)):
        if not overwrite:
            raise TrainError(f"{run_dir} already holds a run; use --resume to continue it or "
                             "--overwrite to start again")
        for name in RUN_FILES:
            if os.path.exists(os.path.join(run_dir, name)):
                os.remove(os.path.join(run_dir, name))
        shutil.rmtree(os.path.join(run_dir, MEMBERS_DIR), ignore_errors=True)


def start_run_dir(run_dir: str, last_path: str, resume: bool, overwrite: bool) -> None:
    """The run directory made ready: resumed only from an existing ``last_path``, a run in
    it refused or cleared (:func:`check_run_dir`)."""
    if resume and not os.path.isfile(last_path):
        raise TrainError(f"--resume: {last_path} not found; nothing to resume")
    check_run_dir(run_dir, resume, overwrite)
    make_directory(run_dir)


def metric_columns(score_column: str) -> tuple[str, ...]:
    """Columns of ``metrics.csv``; the validation score is ``val_macro_f1`` or
    ``val_mean_iou`` (U-Nets, whose accuracies count pixels)."""
    return ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", score_column,
            "lr", "images_per_s", "seconds")


def write_config(run_dir: str, config: dict) -> None:
    write_json(os.path.join(run_dir, "config.json"), config)


def write_history(run_dir: str, history: list[dict], score_column: str) -> None:
    columns = metric_columns(score_column)
    write_csv(os.path.join(run_dir, "metrics.csv"), columns,
              [[f"{row[k]:.6g}" if isinstance(row[k], float) else row[k] for k in columns]
               for row in history])


def write_results(run_dir: str, metrics: dict, history: list[dict], confusion: np.ndarray,
                  classes: list[str], *, loss_name: str, counts: str) -> None:
    """``metrics.json`` and the two plots (``counts``: what the confusion matrix counts)."""
    write_json(os.path.join(run_dir, "metrics.json"), metrics)
    plot_learning_curves(history, os.path.join(run_dir, "learning_curves.png"),
                         best_epoch=metrics.get("best_epoch"), loss_name=loss_name)
    plot_confusion(np.asarray(confusion), classes, os.path.join(run_dir, "confusion_matrix.png"),
                   title=f"Validation split, best epoch: {counts}")
