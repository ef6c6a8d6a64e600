"""``galcnn train --ensemble N``: N members trained one after another into one checkpoint.

Member ``k`` is an ordinary run in ``RUN/members/k`` with seed ``seed + k - 1`` (other
initial weights, sample order and augmentations), on the same prepared data and splits
(raw cutouts are prepared once, by the first member). When the last one is done the members'
best checkpoints are put together (:func:`assemble`): the ensemble is validated as one model,
its temperature is fitted on its averaged logits, and ``RUN/best.pt`` holds every member, so
every command runs the average and reports the members' disagreement. A stopped ensemble is
resumed as any run is (``--resume``): finished members are kept, the unfinished one goes on.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, replace

import torch

from galcnn.checkpoint import load_checkpoint, model_of, save_checkpoint
from galcnn.data.atomic import make_directory, write_json
from galcnn.data.dataset import is_prepared_dataset
from galcnn.distributed import distributed_from_env, joined
from galcnn.models import Ensemble
from galcnn.plots import plot_confusion
from galcnn.runner.training_set import PrepareOptions
from galcnn.runtime import amp_dtype, select_device
from galcnn.stages.train.loop import (TrainHooks, TrainResult, on_main, recorded_metrics,
                                      resumed_options, run_device, splits)
from galcnn.stages.train.loop import train as train_one
from galcnn.stages.train.options import TrainError, TrainOptions
from galcnn.stages.train.run_dir import MEMBERS_DIR, start_run_dir
from galcnn.stages.train.tasks import make_task

__all__ = ["train", "assemble", "member_dirs"]

logger = logging.getLogger("galcnn")


def member_dirs(run_dir: str, n: int) -> list[str]:
    """Where an ensemble's members are trained: ``RUN/members/1`` ... ``RUN/members/n``."""
    return [os.path.join(run_dir, MEMBERS_DIR, str(k)) for k in range(1, n + 1)]


def train(data: str, run_dir: str, options: TrainOptions | None = None, *,
          prepare: PrepareOptions | None = None, resume: bool = False,
          overwrite: bool = False, hooks: TrainHooks | None = None,
          command: str | None = None) -> TrainResult | None:
    """Train a model (``options.ensemble`` 1) or an ensemble of them on ``data`` into
    ``run_dir``; see :func:`galcnn.stages.train.loop.train` for the arguments. An ensemble's
    result has each member's result in ``members``."""
    options = options or (resumed_options(run_dir) if resume else TrainOptions())
    options.check()
    if options.ensemble == 1:
        return train_one(data, run_dir, options, prepare=prepare, resume=resume,
                         overwrite=overwrite, hooks=hooks, command=command)
    started = time.monotonic()
    folders = member_dirs(run_dir, options.ensemble)
    dist_info = distributed_from_env()
    first_last = os.path.join(folders[0], "last.pt")  # what a resume needs
    with joined(dist_info, run_device(options, dist_info), options.dist_timeout):
        on_main(dist_info, lambda: start_run_dir(run_dir, first_last, resume, overwrite))
        results = [_member(data, folders, k, options, prepare=prepare, resume=resume,
                           hooks=hooks, command=command)
                   for k in range(1, options.ensemble + 1)]
        outcome: dict = {}
        finished = dist_info.is_main and all(r.already_complete for r in results) and \
            os.path.isfile(os.path.join(run_dir, "metrics.json"))
        on_main(dist_info, lambda: outcome.update(
            recorded_metrics(run_dir) if finished else
            assemble(run_dir, folders, options, command=command)))
    if not dist_info.is_main:
        return None
    return TrainResult(run_dir=run_dir, classes=results[0].classes,
                       epochs_run=sum(r.epochs_run for r in results),
                       best_epoch=results[0].best_epoch, metrics=outcome,
                       stopped_early=all(r.stopped_early for r in results),
                       elapsed_s=time.monotonic() - started, already_complete=finished,
                       members=results)


def _member(data: str, folders: list[str], k: int, options: TrainOptions, *,
            prepare: PrepareOptions | None, resume: bool, hooks: TrainHooks | None,
            command: str | None) -> TrainResult | None:
    """Member ``k`` (from 1) trained, or resumed where it has a checkpoint."""
    folder = folders[k - 1]
    member = replace(options, seed=options.seed + k - 1)
    if distributed_from_env().is_main:
        logger.info("ensemble member %d/%d (seed %d) in %s", k, options.ensemble,
                    member.seed, folder)
    on_prepared = data if k == 1 or is_prepared_dataset(data) else \
        os.path.join(folders[0], "prepared")
    return train_one(on_prepared, folder, member, prepare=prepare,
                     resume=resume and os.path.isfile(os.path.join(folder, "last.pt")),
                     hooks=hooks, command=command)


def assemble(run_dir: str, folders: list[str], options: TrainOptions, *,
             command: str | None = None, data: str | None = None) -> dict:
    """The members' best checkpoints in ``folders`` put together into ``run_dir/best.pt``:
    validated as one model, calibrated on its averaged logits, its anomaly reference drawn
    from its embeddings. Writes ``metrics.json``, ``config.json`` and the confusion matrix;
    returns the metrics. ``data``: the prepared set they were trained on, when it has moved
    since (the members' cards name where it was)."""
    states = [load_checkpoint(os.path.join(folder, "best.pt")) for folder in folders]
    first = states[0]["card"]
    if any(s["card"].model_args != first.model_args or s["card"].classes != first.classes
           for s in states[1:]):
        raise TrainError(f"{run_dir}: the members were trained with other classes or model "
                         "options; they cannot be averaged")
    device = select_device(options.device)
    dtype = amp_dtype(device, options.amp)
    model = Ensemble([model_of(state, folder) for state, folder in zip(states, folders)])
    model.card = first
    model = model.placed(device).eval()
    task = make_task(options.task, *splits(data or first.training["data"]["path"]))
    outcome = task.finalise(model, device, dtype)
    members = [_summary(state["card"], folder) for state, folder in zip(states, folders)]
    metrics = {**outcome.metrics, "ensemble": members, "classes": task.classes,
               "epochs_run": sum(m["epochs_run"] for m in members)}
    reference, anomaly = task.anomaly_reference(model, device, dtype, options.seed)
    training = {**first.training, "options": {**first.training["options"],
                                              "seed": options.seed},
                "ensemble": {"members": len(folders),
                             "seeds": [m["seed"] for m in members]}}
    card = first.with_updates(metrics={k: v for k, v in metrics.items() if k != "test"},
                              temperature=outcome.temperature or 1.0,
                              calibration=outcome.calibration or {}, anomaly=anomaly,
                              training=training)
    extra = {} if reference is None else {"anomaly_reference": torch.from_numpy(reference)}
    save_checkpoint(os.path.join(run_dir, "best.pt"), card, states[0]["model"],
                    members=[state["model"] for state in states[1:]], **extra)
    _write_run_files(run_dir, metrics, outcome.confusion, task, options, command)
    return metrics


def _summary(card, folder: str) -> dict:
    """One member in the ensemble's metrics: where, its seed, its own validation figures."""
    metrics = recorded_metrics(folder)
    return {"folder": os.path.relpath(folder, os.path.dirname(os.path.dirname(folder))),
            "seed": card.training["options"]["seed"], "best_epoch": metrics["best_epoch"],
            "epochs_run": metrics["epochs_run"],
            **{k: metrics[k] for k in ("accuracy", "macro_f1", "mean_iou") if k in metrics}}


def _write_run_files(run_dir: str, metrics: dict, confusion, task, options: TrainOptions,
                     command: str | None) -> None:
    make_directory(run_dir)
    write_json(os.path.join(run_dir, "config.json"),
               {"command": command, "options": asdict(options),
                "members": [m["folder"] for m in metrics["ensemble"]]})
    write_json(os.path.join(run_dir, "metrics.json"), metrics)
    plot_confusion(confusion, task.classes, os.path.join(run_dir, "confusion_matrix.png"),
                   title=f"Validation split, ensemble of {options.ensemble}: {task.counts}")
