"""``galcnn train``: the training loop, the same for every task.

One process per device; under ``torchrun`` or ``srun`` the same code runs
DistributedDataParallel with a DistributedSampler, and rank 0 alone validates, decides (best
epoch, early stop) and writes (:mod:`galcnn.distributed`). Every epoch ends with a checkpoint
(``last.pt``) that holds weights, optimizer, scheduler, scaler, RNG states and the history,
and every epoch is seeded from (seed, epoch): a killed or preempted job resumed with
``resume=True`` continues with the same weights, optimizer state, sample order and
augmentation draws. On a CPU that is bit for bit the uninterrupted run; on a GPU the
kernels that sum in a varying order (cuDNN's convolution backward, atomics) make the
numbers differ in their last bits, as two uninterrupted GPU runs do. A stop request (Ctrl-C, SIGTERM) saves ``last.pt`` at the next batch boundary, with
the epoch's position, so a resumed run goes on from that batch. Validation scores the model
pooled over its symmetry group, the model every command runs. At the end the task measures
the best checkpoint (classifiers get a calibration temperature) and the run directory gets
its metrics and plots. The run directory has one writer: a second ``train`` (or a
``--resume`` while the first still runs) is refused.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from galcnn import __version__
from galcnn.card import ModelCard
from galcnn.checkpoint import build_model, load_checkpoint, save_checkpoint
from galcnn.data.atomic import make_parent, remove_stale_temporaries
from galcnn.data.dataset import PreparedDataset, is_prepared_dataset
from galcnn.data.lock import output_lock
from galcnn.errors import GalcnnError, naming_output
from galcnn.inference import refresh_batch_norm
from galcnn.interrupt import Interrupted, StopRequest
from galcnn.models import count_parameters, model_is_invariant
from galcnn.models.pooled import GroupPooled
from galcnn.models.symmetry import (elements_of, mirror_permutation, random_elements,
                                    random_rotations)
from galcnn.distributed import (Distributed, agree_max, distributed_from_env, from_main,
                                is_peer_failure, joined, sum_across)
from galcnn.runner.training_set import PrepareOptions
from galcnn.runner.training_set import prepare as prepare_training_set
from galcnn.runtime import (amp_dtype, autocast, configure_precision, precision_of, rng_states,
                            seed_everything, select_device, set_rng_states, worker_count)
from galcnn.stages.train.finetune import init_from
from galcnn.stages.train.options import TrainError, TrainOptions
from galcnn.stages.train.run_dir import (MEMBERS_DIR, start_run_dir, write_config,
                                         write_history, write_results)
from galcnn.stages.train.sampling import class_weights_for, make_loader
from galcnn.stages.train.tasks import Task, make_task

__all__ = ["train", "TrainHooks", "TrainResult", "resumed_options", "recorded_metrics",
           "splits", "on_main", "run_device"]

logger = logging.getLogger("galcnn")


@dataclass
class TrainResult:
    run_dir: str
    classes: list[str]
    epochs_run: int
    best_epoch: int
    metrics: dict
    stopped_early: bool
    elapsed_s: float
    history: list[dict] = field(default_factory=list)
    already_complete: bool = False
    """``resume`` found the run finished: nothing was trained or rewritten."""
    members: list["TrainResult"] = field(default_factory=list)
    """An ensemble's members' own results (:mod:`galcnn.stages.train.ensemble`)."""


def resumed_options(run_dir: str, changes: dict | None = None) -> TrainOptions:
    """The options the run in ``run_dir`` was trained with (its ``last.pt``), with
    ``changes`` applied: a resume continues the run it resumes, and the log says what a
    change of options changes. Defaults when there is no run to read (``train`` then says
    there is nothing to resume)."""
    last = os.path.join(run_dir, "last.pt")
    if not os.path.isfile(last):  # an ensemble's: its first member's (the ensemble's seed)
        last = os.path.join(run_dir, MEMBERS_DIR, "1", "last.pt")
    if not os.path.isfile(last):
        return TrainOptions(**(changes or {}))
    recorded = load_checkpoint(last)["card"].training.get("options", {})
    known = {f.name for f in fields(TrainOptions)}
    base = TrainOptions(**{k: v for k, v in recorded.items() if k in known})
    if base.mirror_pairs is not None:
        base = replace(base, mirror_pairs=[tuple(p) for p in base.mirror_pairs])
    changed = {k: v for k, v in (changes or {}).items() if getattr(base, k) != v}
    for name, value in changed.items():
        logger.warning("--resume with %s %s: the run was started with %s",
                       name.replace("_", "-"), value, getattr(base, name))
    return replace(base, **changed)


def recorded_metrics(run_dir: str) -> dict:
    """The metrics.json of a finished run."""
    with open(os.path.join(run_dir, "metrics.json"), encoding="utf-8") as handle:
        return json.load(handle)


@dataclass
class TrainHooks:
    """What a caller watching a run is told, and how it asks the run to stop."""

    on_epoch_end: Callable[[dict], None] | None = None
    """Called after each epoch's checkpoint is written, with the metrics.csv row and
    ``best`` (whether it improved)."""
    progress: Callable[[int, int], Callable[[int], None]] | None = None
    """``progress(epoch, n_images)`` returns ``advance(n_images)``, for a live display."""
    stop: StopRequest | None = None
    """When set (:func:`galcnn.interrupt.stop_on_signals`), training stops at the next batch
    boundary, saves a resumable ``last.pt`` and raises :class:`~galcnn.interrupt.Interrupted`."""


def train(data: str, run_dir: str, options: TrainOptions | None = None, *,
          prepare: PrepareOptions | None = None, resume: bool = False,
          overwrite: bool = False, hooks: TrainHooks | None = None,
          command: str | None = None) -> TrainResult | None:
    """Train a model on ``data`` into ``run_dir``.

    ``data`` is a prepared dataset, or raw cutouts that rank 0 first prepares into
    ``RUN/prepared`` with ``prepare`` (labels, recipe, split; default
    :class:`~galcnn.runner.training_set.PrepareOptions`). Returns None on ranks other than
    0 of a distributed job, which call none of the ``hooks``.
    """
    started = time.monotonic()
    options = options or (resumed_options(run_dir) if resume else TrainOptions())
    options.check()
    hooks = hooks or TrainHooks()
    dist_info = distributed_from_env()
    device = run_device(options, dist_info)
    configure_precision(device, options.amp)
    last_path = os.path.join(run_dir, "last.pt")
    with joined(dist_info, device, options.dist_timeout), _claimed(run_dir, dist_info), \
            naming_output(run_dir, lambda: _kept(last_path)):
        found = set(os.listdir(run_dir)) if os.path.isdir(run_dir) else None
        try:
            on_main(dist_info, lambda: start_run_dir(run_dir, last_path, resume, overwrite))
            data_path = _prepared(data, run_dir, prepare, resume, dist_info)
            run = _Run(data_path, run_dir, options, dist_info, device, command,
                       fine_tune=not resume)
            if resume:
                run.resume(last_path)
            finished = os.path.isfile(os.path.join(run_dir, "metrics.json")) and run.complete
            run.fit(hooks.on_epoch_end, hooks.progress, hooks.stop)
            if not dist_info.is_main:
                return None
            metrics = (recorded_metrics(run_dir) if finished else run.finish())
            trainer = run.trainer
            return TrainResult(run_dir=run_dir, classes=run.task.classes,
                               epochs_run=trainer["epoch"] + 1, best_epoch=trainer["best_epoch"],
                               metrics=metrics, stopped_early=trainer["stopped_early"],
                               elapsed_s=time.monotonic() - started, history=trainer["history"],
                               already_complete=finished)
        except BaseException as exc:
            if dist_info.is_main and not os.path.exists(last_path):
                _remove_unfinished(run_dir, found)
            if dist_info.enabled and isinstance(exc, Exception) and is_peer_failure(exc):
                raise TrainError(_peer_failure_text(dist_info, last_path)) from None
            raise


def run_device(options: TrainOptions, dist_info: Distributed) -> torch.device:
    """The device this process trains on (its local rank's GPU in a distributed job)."""
    try:
        return select_device(options.device, dist_info.local_rank)
    except ValueError as exc:
        raise TrainError(str(exc)) from exc


@contextmanager
def _claimed(run_dir: str, dist_info: Distributed) -> Iterator[None]:
    """One writer per run directory (a second one is refused)."""
    held = ExitStack()

    def claim() -> None:
        make_parent(run_dir)
        held.enter_context(output_lock(run_dir))
        remove_stale_temporaries(run_dir)

    try:
        on_main(dist_info, claim)
    except BaseException:
        held.close()
        raise
    with held:
        yield


def _kept(last_path: str) -> str:
    """What a full disk leaves the user."""
    if os.path.isfile(last_path):
        return f"{last_path}, the last complete checkpoint, is kept; free space, then --resume"
    return "nothing was kept; free space, then run the command again"


def on_main(dist_info: Distributed, work: Callable[[], object] | None) -> None:
    """Run ``work`` on rank 0 alone; every process raises its one-line error if it fails
    (the others would otherwise wait for rank 0 forever)."""
    problem = None
    if dist_info.is_main and work is not None:
        try:
            work()
        except GalcnnError as exc:
            problem = exc
            if not dist_info.enabled:
                raise
        except BaseException:
            from_main(dist_info, "it stopped with an error (see its output)")
            raise
    problem_text = from_main(dist_info, None if problem is None else str(problem))
    if problem is not None:
        raise problem
    if problem_text is not None:
        raise TrainError(f"rank 0: {problem_text}")


def _peer_failure_text(dist_info: Distributed, last_path: str) -> str:
    kept = (f"{last_path} is kept: resume with the same launcher and --resume"
            if os.path.exists(last_path) else "no checkpoint was written yet")
    return (f"another process of this {dist_info.world_size}-process job ({dist_info.launcher}) "
            f"stopped or stopped answering; {kept}")


def splits(data_path: str) -> tuple[PreparedDataset, PreparedDataset, PreparedDataset]:
    """The prepared set's train, validation and test splits (validation falls back to the
    training set, said in the log)."""
    try:
        train_set = PreparedDataset(data_path, "train")
        val_set = PreparedDataset(data_path, "val")
        test_set = PreparedDataset(data_path, "test")
    except ValueError as exc:
        raise TrainError(str(exc)) from exc
    if len(train_set) == 0:
        raise TrainError(f"{data_path}: no training samples (a labelled prepared set is "
                         "needed: the labels choose the training split)")
    if len(val_set) == 0:
        logger.warning("%s has no validation split; early stopping and calibration use "
                       "the training set (prepare with --val-fraction > 0)", data_path)
        val_set = train_set
    return train_set, val_set, test_set


def _ema(net: torch.nn.Module, epochs: float, steps_per_epoch: int) -> AveragedModel | None:
    """An exponential moving average of ``net``'s weights and batch-norm statistics over about
    ``epochs`` epochs (Polyak averaging, as in timm's ModelEmaV2), or None for 0."""
    if epochs <= 0:
        return None
    decay = 1.0 - 1.0 / max(epochs * steps_per_epoch, 1.0)
    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _remove_unfinished(run_dir: str, found: set[str] | None) -> None:
    """A run that failed before its first checkpoint leaves nothing behind: the run
    directory if this call made it, else what this call added to it."""
    if found is None:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for name in set(os.listdir(run_dir)) - found if os.path.isdir(run_dir) else ():
        path = os.path.join(run_dir, name)
        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)


def _prepared(data: str, run_dir: str, options: PrepareOptions | None, resume: bool,
              dist_info: Distributed) -> str:
    """A prepared dataset path; raw cutouts are prepared into ``RUN/prepared`` first, by
    rank 0 while the other processes wait (on the control group: no timeout to trip)."""
    if is_prepared_dataset(data):
        return data
    target = os.path.join(run_dir, "prepared")
    if resume and is_prepared_dataset(target):
        return target
    if not os.path.exists(data):
        raise TrainError(f"--data {data}: no such file or directory")

    def prepare_raw() -> None:
        try:
            result = prepare_training_set([data], target, options, overwrite=True)
        except GalcnnError as exc:
            raise TrainError(f"preparing {data}: {exc}") from exc
        for path, problem in result.failures:
            logger.warning("prepare: %s: %s", path, problem)
        logger.info("prepared %d samples from %s into %s (%d failed)", result.n_samples, data,
                    target, len(result.failures))

    on_main(dist_info, prepare_raw)
    return target


def _lr_lambda(options: TrainOptions, steps_per_epoch: int):
    total = max(1, options.epochs * steps_per_epoch)
    warmup = max(1, int(options.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class _Run:
    """One run's model, data, optimisation state and bookkeeping."""

    def __init__(self, data_path: str, run_dir: str, options: TrainOptions,
                 dist_info: Distributed, device: torch.device, command: str | None, *,
                 fine_tune: bool = True):
        self.run_dir, self.dist, self.device = run_dir, dist_info, device
        train_set, val_set, test_set = splits(data_path)
        self.task: Task = make_task(options.task, train_set, val_set, test_set)
        self.options = options = self.task.resolve(options)
        self.card = self._card(options, train_set, val_set, data_path)
        seed_everything(options.seed, -1)
        self.model = build_model(self.card)
        if options.init_from and fine_tune:  # a resumed run has its own weights
            init_from(self.model.net, options.init_from, options.freeze)
        self.model = self.model.placed(device)
        self.net = (torch.nn.parallel.DistributedDataParallel(
            self.model.net, device_ids=[device.index] if device.type == "cuda" else None)
            if dist_info.enabled else self.model.net)
        self.workers = worker_count(options.workers, device=device,
                                    world_size=dist_info.world_size, decodes_fits=False)
        self.loader, self.sampler = make_loader(
            train_set, self.task.targets, balanced=options.balanced_sampling,
            batch_size=options.batch_size, seed=options.seed, dist_info=dist_info,
            workers=self.workers, device=device)
        self.steps_per_epoch = max(1, len(self.loader))
        batches = self.loader.sampler  # whole batches of indices
        self.images_per_epoch = (len(batches) * batches.batch_size if batches.drop_last
                                 else len(batches.sampler))
        self._optimisation(options)
        self.trainer = {"epoch": -1, "best_score": None, "best_epoch": -1, "bad_epochs": 0,
                        "history": [], "stopped_early": False,
                        "world_size": dist_info.world_size}
        precision = precision_of(device, self.dtype)
        self.card = self.card.with_updates(training={
            **self.card.training, "device": device.type, "precision": precision,
            "world_size": dist_info.world_size})
        if dist_info.is_main:
            self._announce(data_path, command, precision, len(train_set), len(val_set))

    def _card(self, options: TrainOptions, train_set: PreparedDataset,
              val_set: PreparedDataset, data_path: str) -> ModelCard:
        """The model card of this run: task, classes, recipe, network, symmetry group."""
        recipe = train_set.preprocess
        symmetry, pairs = self.task.resolve_symmetry(options)
        self.symmetry = symmetry
        self.elements = elements_of(symmetry, recipe.size)
        """The group elements training draws from (labels of mirror pairs swapped by
        ``mirror_swap``)."""
        self.mirror_swap = mirror_permutation(self.task.classes, pairs) if pairs else None
        model_args = self.task.model_args(options, recipe)
        self.class_counts = self.task.class_counts()
        pooled_over = self.elements
        if model_is_invariant(options.arch):  # the network holds the group: no pooled copies
            model_args["mirror_swap"], pooled_over = self.mirror_swap, [(0, False)]
        return ModelCard(
            task=self.task.name, classes=self.task.classes,
            cutout_classes=self.task.cutout_classes, preprocess=recipe, model=options.arch,
            model_args=model_args, symmetry=symmetry, elements=pooled_over, mirror_pairs=pairs,
            training={"options": {**asdict(options), "mirror_pairs": [list(p) for p in pairs]},
                      "data": {"path": os.path.abspath(data_path),
                               "train_counts": self.class_counts.tolist(),
                               "sample_weights": train_set.metadata.get("labels", {}).get(
                                   "weights"),
                               "n_train": len(train_set), "n_val": len(val_set)}},
            provenance={"galcnn_version": __version__, "torch_version": str(torch.__version__)})

    def _optimisation(self, options: TrainOptions) -> None:
        """Optimizer, learning-rate schedule, weight average, precision, class weights."""
        device = self.device
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(parameters, lr=options.lr,
                                           weight_decay=options.weight_decay)
        if options.schedule == "onecycle":
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer, max_lr=options.lr,
                total_steps=options.epochs * self.steps_per_epoch,
                pct_start=min(0.5, max(options.warmup_epochs / options.epochs, 0.05)))
        else:
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, _lr_lambda(options, self.steps_per_epoch))
        self.ema = _ema(self.model.net, options.ema_epochs, self.steps_per_epoch)
        self.kept = (GroupPooled(self.ema.module, self.card.elements, self.card.mirror_swap
                                 ).to(device) if self.ema else self.model)
        """The model validated and saved: the weights' moving average when there is one."""
        self.dtype = amp_dtype(device, options.amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        weights = class_weights_for(self.class_counts, options.class_weights)
        self.weights = weights.to(device) if weights is not None else None
        self.weighted = bool((self.task.train_set.weights != 1).any())
        """Whether samples carry loss weights other than 1 (a weight column)."""

    def _announce(self, data_path: str, command: str | None, precision: str, n_train: int,
                  n_val: int) -> None:
        """config.json, and the run's one-line summary in the log."""
        options, dist_info, device = self.options, self.dist, self.device
        write_config(self.run_dir, {
            "command": command or " ".join(shlex.quote(a) for a in sys.argv),
            "data": os.path.abspath(data_path), "prepared": os.path.abspath(data_path),
            "options": self.card.training["options"], "symmetry": self.symmetry,
            "device": str(device), "world_size": dist_info.world_size,
            "launcher": dist_info.launcher or None, "precision": precision,
            "amp": str(self.dtype) if self.dtype else None, "loader_workers": self.workers,
            "parameters": count_parameters(self.model), "galcnn_version": __version__,
            "torch_version": str(torch.__version__),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        logger.info("training %s on %s (%s%s): %d train / %d val samples, %d classes, "
                    "symmetry %s, %d parameters", options.arch, device, precision,
                    f", {dist_info.world_size} processes" if dist_info.enabled else "",
                    n_train, n_val, len(self.task.classes), self.symmetry,
                    count_parameters(self.model))

    def resume(self, last_path: str) -> None:
        """Continue from ``last.pt``, whatever device saved it: the checkpoint is read onto
        the CPU and every state is moved to where this run keeps it (RNG states stay on
        the CPU, as torch needs them; the optimizer's step counters too)."""
        state = load_checkpoint(last_path, map_location="cpu")
        old = state["card"]
        if (old.classes, old.model, old.model_args, old.elements) != \
                (self.card.classes, self.card.model, self.card.model_args, self.card.elements):
            raise TrainError(f"--resume: {last_path} was trained with other classes or model "
                             "options; start a new run directory")
        self.model.net.load_state_dict(state.get("trained", state["model"]))
        if self.ema:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self._load_scaler(state["scaler"])
        self.trainer = {**state["trainer"], "world_size": self.dist.world_size}
        set_rng_states(state["rng"])
        self._check_partial(last_path, state["trainer"].get("world_size", 1),
                            old.training.get("options", {}).get("batch_size"))
        partial = self.trainer.get("partial")
        where = (f"epoch {partial['epoch'] + 1} at batch {partial['batches'] + 1}" if partial
                 else f"epoch {self.trainer['epoch'] + 2}")
        if self.dist.is_main:
            logger.info("resuming %s at %s", self.run_dir, where)

    def _check_partial(self, last_path: str, saved_world: int, saved_batch: int | None) -> None:
        """A run resumed with another number of processes or batch size goes on, said; an
        epoch it stopped in the middle of starts again (its batches were counted in the
        old split)."""
        if saved_world == self.dist.world_size and saved_batch in (None,
                                                                   self.options.batch_size):
            return
        dropped = self.trainer.pop("partial", None)
        if self.dist.is_main:
            logger.warning(
                "%s was trained by %d process(es) (batch %s) and resumes with %d (batch %d): "
                "the order of the samples from here on is not that of an uninterrupted run%s",
                last_path, saved_world, saved_batch, self.dist.world_size,
                self.options.batch_size,
                f"; epoch {dropped['epoch'] + 1} starts again from its first batch"
                if dropped else "")

    def _load_scaler(self, saved: dict) -> None:
        """The fp16 loss scale, when both runs used one: a run saved without one (CPU or
        bf16) resumed where fp16 needs it starts from a fresh scale."""
        if not self.scaler.is_enabled():
            return
        if not saved:
            if self.dist.is_main:
                logger.warning("resuming in float16 a run saved without loss scaling: the "
                               "loss scale starts afresh")
            return
        self.scaler.load_state_dict(saved)

    def fit(self, on_epoch_end, progress, stop: StopRequest | None) -> None:
        """Train epoch after epoch. Only rank 0 validates, decides (best epoch, early stop)
        and writes; the others follow its decisions, so all stop at the same epoch."""
        options = self.options
        main = self.dist.is_main
        for epoch in range(self.trainer["epoch"] + 1, options.epochs):
            if self.trainer["stopped_early"]:
                break
            advance = progress(epoch, self.images_per_epoch) if progress and main else None
            row, val_metrics = self._epoch(epoch, advance, stop)
            improved = self._record(epoch, row, val_metrics) if main else False
            self.trainer = from_main(self.dist, self.trainer)
            if on_epoch_end and main:
                on_epoch_end({**row, "best": improved})
            if self.trainer["stopped_early"] and main:
                logger.info("early stop: no %s improvement in %d epochs", options.monitor,
                            options.patience)
            if self._stop_requested(stop):
                said = ("every epoch: --resume finishes the run (calibration, metrics)"
                        if self.complete else f"epoch {epoch + 1}")
                raise Interrupted(self._stop_signal, f"{self.run_dir}/last.pt holds {said}")

    @property
    def complete(self) -> bool:
        """Whether no epoch is left to train (the last one done, or an early stop)."""
        return self.trainer["stopped_early"] or self.trainer["epoch"] + 1 >= self.options.epochs

    def _record(self, epoch: int, row: dict, val_metrics: dict) -> bool:
        """Rank 0: the epoch's row in the history, the best score and early stopping, the
        checkpoints and the log line; whether the epoch improved."""
        options, trainer = self.options, self.trainer
        trainer["history"].append(row)
        score = row[self.task.score_column] if options.monitor != "loss" else -row["val_loss"]
        improved = trainer["best_score"] is None or score > trainer["best_score"] + 1e-6
        if improved:
            trainer.update(best_score=score, best_epoch=epoch + 1, bad_epochs=0)
        else:
            trainer["bad_epochs"] += 1
        trainer["epoch"] = epoch
        if trainer["bad_epochs"] >= options.patience:
            trainer["stopped_early"] = True
        self._save(epoch, val_metrics, improved)
        logger.info("epoch %d/%d: loss %.4f acc %.3f | val loss %.4f acc %.3f %s %.3f"
                    "%s | %.0f images/s", epoch + 1, options.epochs, row["train_loss"],
                    row["train_accuracy"], row["val_loss"], row["val_accuracy"],
                    self.task.score_name, row[self.task.score_column],
                    " *" if improved else "", row["images_per_s"], extra={"epoch_row": row})
        return improved

    def _epoch(self, epoch: int, advance, stop: StopRequest | None
               ) -> tuple[dict | None, dict | None]:
        """Train one epoch, then (rank 0) validate the pooled model: the metrics.csv row and
        the validation metrics (None on other ranks). A stop request ends the epoch at a
        batch boundary with a resumable ``last.pt``.

        Nothing in a step waits for the device: the running sums stay on it until the
        epoch ends, and a stop request is agreed on over the CPU."""
        generator = seed_everything(self.options.seed, epoch)
        self.sampler.set_epoch(epoch)
        self.model.train()
        begun = time.monotonic()
        done = {"batches": 0, "seen": 0, "seconds": 0.0}
        sums = torch.zeros(2, dtype=_SUM_DTYPE.get(self.device.type, torch.float64),
                           device=self.device)  # loss times samples, correct samples
        partial = self.trainer.pop("partial", None)
        resumed = partial is not None and partial["epoch"] == epoch
        if resumed:
            self.loader.sampler.skip = partial["batches"]
        batches = iter(self.loader)  # draws a seed from torch's RNG: before restoring it
        if resumed:  # stopped mid-epoch: go on from the next batch
            done.update({k: partial[k] for k in done})
            if self.dist.is_main:  # the sums saved are every rank's together
                sums += torch.tensor([partial["loss_sum"], partial["correct"]],
                                     dtype=sums.dtype).to(self.device)
            set_rng_states(partial["rng"])
            generator.set_state(partial["generator"])
            if advance:
                advance(int(done["seen"]))
        for images, targets, weights in batches:
            n = self._step(images, targets, weights, generator, sums)
            done["batches"] += 1
            done["seen"] += n
            if advance:
                advance(n)
            if self._stop_requested(stop) and done["batches"] < self.steps_per_epoch:
                done["seconds"] += time.monotonic() - begun
                self._save_partial(epoch, done, sum_across(self.dist, sums), generator)
                raise Interrupted(self._stop_signal,
                                  f"{self.run_dir}/last.pt holds epoch {epoch + 1} up to batch "
                                  f"{done['batches']}/{self.steps_per_epoch}")
        train_seconds = done["seconds"] + time.monotonic() - begun
        loss_sum, correct, seen = sum_across(self.dist, torch.cat([
            sums, torch.tensor([done["seen"]], dtype=sums.dtype).to(self.device)])).tolist()
        if not self.dist.is_main:
            return None, None
        if self.options.refresh_bn:
            refresh_batch_norm(self.kept.net, self.task.train_set, self.device, self.dtype,
                               transform=self._augmented() if
                               self.options.refresh_bn_augmented else None)
        val_loss, val_metrics, val_score = self.task.validate(self.kept, self.device,
                                                              self.dtype)
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1),
               "train_accuracy": correct / max(seen, 1), "val_loss": val_loss,
               "val_accuracy": val_metrics["accuracy"], self.task.score_column: val_score,
               "lr": float(self.optimizer.param_groups[0]["lr"]),
               "images_per_s": seen / max(train_seconds, 1e-9),
               "seconds": done["seconds"] + time.monotonic() - begun}
        return row, val_metrics

    def _augmented(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The training augmentation with draws of its own, the same every epoch (the run's
        random number generators are left alone: a resumed run is the same run)."""
        generator = torch.Generator().manual_seed(self.options.seed * 7919 + 1)

        def transform(x: torch.Tensor) -> torch.Tensor:
            unused = torch.zeros(len(x), dtype=torch.long, device=x.device)
            x, _ = random_elements(x, unused, self.elements, self.mirror_swap, generator)
            return random_rotations(x, generator) if self.symmetry == "rotate" else x

        return transform

    def _step(self, images: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
              generator: torch.Generator, sums: torch.Tensor) -> int:
        """One optimisation step on a batch drawn under a random group element; adds its
        loss and correct count to ``sums`` (on the device) and returns the batch size.
        ``weights``: each sample's loss weight, used when the set has a weight column."""
        x = images.to(self.device, non_blocking=True).contiguous(
            memory_format=torch.channels_last)
        y = targets.to(self.device, non_blocking=True)
        x, y = random_elements(x, y, self.elements, self.mirror_swap, generator)
        if self.symmetry == "rotate":
            x = random_rotations(x, generator)
        sample_weights = weights.to(self.device) if self.weighted else None
        with autocast(self.device, self.dtype):
            logits = self.net(x)
            loss = self.task.loss(logits.float(), y, self.weights, self.options.label_smoothing,
                                  sample_weights)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema:
            self.ema.update_parameters(self.model.net)
        sums[0] += loss.detach().to(sums.dtype) * len(y)
        sums[1] += self.task.correct(logits.detach(), y).to(sums.dtype)
        return len(y)

    def _stop_requested(self, stop: StopRequest | None) -> bool:
        """Whether to stop here; every rank of a distributed job agrees (the highest signal
        number any rank received), so all stop at the same batch."""
        signum = (stop.signum or 0) if stop is not None else 0
        self._stop_signal = agree_max(self.dist, signum)
        return self._stop_signal > 0

    def _save_partial(self, epoch: int, done: dict, sums: torch.Tensor,
                      generator: torch.Generator) -> None:
        """``last.pt`` in the middle of an epoch: the completed epochs' state plus where
        this epoch stopped (batch count, running sums of every rank, RNG states) for
        ``--resume``."""
        if not self.dist.is_main:
            return
        loss_sum, correct = sums.tolist()
        partial = {"epoch": epoch, **done, "loss_sum": loss_sum, "correct": correct,
                   "rng": rng_states(), "generator": generator.get_state()}
        state = {**self._resume_state(), "trainer": {**self.trainer, "partial": partial}}
        save_checkpoint(os.path.join(self.run_dir, "last.pt"), self.card,
                        self.kept.net.state_dict(), **state)

    def _resume_state(self) -> dict:
        """What ``--resume`` needs besides the kept weights and the trainer's bookkeeping."""
        state = {"optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                 "rng": rng_states()}
        if self.ema:
            state.update(trained=self.model.net.state_dict(), ema=self.ema.state_dict())
        return state

    def _save(self, epoch: int, val_metrics: dict, improved: bool) -> None:
        card = self.card.with_updates(metrics=val_metrics,
                                      training={**self.card.training, "epoch": epoch + 1})
        state = {**self._resume_state(), "trainer": self.trainer}
        weights = self.kept.net.state_dict()
        if improved:
            save_checkpoint(os.path.join(self.run_dir, "best.pt"), card, weights, **state)
        save_checkpoint(os.path.join(self.run_dir, "last.pt"), card, weights, **state)
        write_history(self.run_dir, self.trainer["history"], self.task.score_column)

    def finish(self) -> dict:
        """Measure the best checkpoint; rewrite it without the resume-only state and with its
        final metrics (and temperature); write metrics.json and the plots."""
        best_path = os.path.join(self.run_dir, "best.pt")
        best = load_checkpoint(best_path, map_location="cpu")
        self.kept.net.load_state_dict(best["model"])
        outcome = self.task.finalise(self.kept, self.device, self.dtype)
        metrics = {**outcome.metrics, "best_epoch": self.trainer["best_epoch"],
                   "epochs_run": self.trainer["epoch"] + 1, "classes": self.task.classes}
        reference, anomaly = self.task.anomaly_reference(self.kept, self.device, self.dtype,
                                                         self.options.seed)
        card = best["card"].with_updates(
            metrics={k: v for k, v in metrics.items() if k != "test"},
            temperature=outcome.temperature or 1.0, calibration=outcome.calibration or {},
            anomaly=anomaly)
        extra = {} if reference is None else {"anomaly_reference": torch.from_numpy(reference)}
        save_checkpoint(best_path, card, best["model"], trainer=best["trainer"], **extra)
        write_results(self.run_dir, metrics, self.trainer["history"], outcome.confusion,
                      self.task.classes, loss_name=self.task.loss_name, counts=self.task.counts)
        return metrics


_SUM_DTYPE = {"mps": torch.float32}
"""Running sums are float64 (exact across a resume) where the device has it."""
