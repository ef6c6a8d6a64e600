"""``galcnn train``: a morphology classifier from a prepared dataset (or raw cutouts).

One process per device; under ``torchrun`` the same code runs DistributedDataParallel with a
DistributedSampler and only rank 0 writes. Every epoch ends with a checkpoint (``last.pt``) that
holds weights, optimizer, scheduler, scaler, RNG states and the history, and every epoch is
seeded from (seed, epoch): a killed or preempted job resumed with ``resume=True`` continues
exactly. At the end the best checkpoint gets a temperature fitted on the validation split,
calibration and per-class metrics, and plots.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import numpy as np
import torch
from torch.nn import functional as F

from galcnn import __version__
from galcnn.checkpoint import load_checkpoint, save_checkpoint
from galcnn.dataset import PreparedDataset, is_prepared_dataset
from galcnn.losses import segmentation_loss
from galcnn.masks import mask_to_target, segmentation_classes
from galcnn.metrics import (classification_metrics, confusion_matrix, expected_calibration_error,
                            fit_temperature, segmentation_metrics, softmax)
from galcnn.models import ARCHITECTURES, SEGMENTATION_ARCHITECTURES, build_model, count_parameters
from galcnn.runtime import (Distributed, amp_dtype, autocast, close_distributed,
                            distributed_from_env, init_distributed, loader_workers, rng_states,
                            seed_everything, select_device, set_rng_states)
from galcnn.symmetry import (elements_of, find_mirror_pairs, mirror_permutation, random_elements,
                             random_rotations)

__all__ = ["TrainOptions", "TrainResult", "TrainError", "train", "SYMMETRIES", "SCHEDULES"]

logger = logging.getLogger("galcnn")

SYMMETRIES = ("auto", "none", "rot90", "dihedral", "rotate")
SCHEDULES = ("cosine", "onecycle")
TASKS = ("classify", "segment")
MONITORS = ("auto", "macro_f1", "mean_iou", "loss")
METRIC_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                  "val_macro_f1", "lr", "images_per_s", "seconds")
#: metrics.csv of a U-Net: accuracies are pixel accuracies, the score is mean IoU.
SEGMENT_METRIC_COLUMNS = tuple("val_mean_iou" if c == "val_macro_f1" else c
                               for c in METRIC_COLUMNS)


class TrainError(ValueError):
    """Training cannot start (bad data, options, or run directory); explained in one line."""


@dataclass
class TrainOptions:
    """Everything that defines a training run; stored in ``config.json`` and the model card."""

    task: str = "classify"
    arch: str = "auto"
    """auto: ``resnet`` to classify, ``unet`` to segment."""
    width: int | None = None
    """Channels of the first stage; None: 32 (classifiers) or 16 (U-Net)."""
    depth: int = 3
    """U-Net: number of poolings."""
    dropout: float | None = None
    """None: 0.3 (classifiers) or 0 (U-Net)."""
    symmetry: str = "auto"
    mirror_pairs: list[tuple[str, str]] | None = None
    epochs: int = 50
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    schedule: str = "cosine"
    warmup_epochs: float = 2.0
    label_smoothing: float = 0.05
    class_weights: str = "auto"
    balanced_sampling: bool = False
    monitor: str = "auto"
    """auto: ``macro_f1`` to classify, ``mean_iou`` to segment; or ``loss``."""
    patience: int = 15
    seed: int = 0
    device: str = "auto"
    workers: int | None = None
    amp: bool = True
    init_from: str | None = None
    freeze: int = 0

    @property
    def segment(self) -> bool:
        return self.task == "segment"

    def resolved(self) -> "TrainOptions":
        """A copy with every ``auto``/None default replaced by what it means for the task."""
        from dataclasses import replace

        return replace(
            self, arch=("unet" if self.segment else "resnet") if self.arch == "auto" else self.arch,
            width=self.width or (16 if self.segment else 32),
            dropout=(0.0 if self.segment else 0.3) if self.dropout is None else self.dropout,
            monitor=("mean_iou" if self.segment else "macro_f1") if self.monitor == "auto"
            else self.monitor)

    def check(self) -> None:
        if self.task not in TASKS:
            raise TrainError(f"unknown --task {self.task!r}; choose {', '.join(TASKS)}")
        allowed = SEGMENTATION_ARCHITECTURES if self.segment else ARCHITECTURES
        if self.arch not in ("auto", *allowed):
            raise TrainError(f"--arch {self.arch} cannot {self.task}; choose "
                             f"{', '.join(allowed)}")
        if self.monitor == ("macro_f1" if self.segment else "mean_iou"):
            raise TrainError(f"--monitor {self.monitor} does not apply to --task {self.task}")
        if not 1 <= self.depth <= 6:
            raise TrainError("--depth must be between 1 and 6")
        if self.symmetry not in SYMMETRIES:
            raise TrainError(f"unknown --symmetry {self.symmetry!r}")
        if self.schedule not in SCHEDULES:
            raise TrainError(f"unknown --schedule {self.schedule!r}")
        if self.monitor not in MONITORS:
            raise TrainError(f"unknown --monitor {self.monitor!r}")
        if self.class_weights not in ("auto", "none"):
            raise TrainError("--class-weights must be auto or none")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise TrainError("--epochs, --batch-size and --lr must be positive")


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


def class_weights_for(counts: np.ndarray, mode: str) -> torch.Tensor | None:
    """``auto``: weights proportional to 1/sqrt(frequency), mean 1 over samples.

    Full inverse-frequency weights over-correct (the rare classes' few examples dominate and
    accuracy on the common ones collapses); the square root keeps rare classes visible.
    """
    if mode == "none":
        return None
    counts = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    weights = 1.0 / np.sqrt(counts)
    weights *= counts.sum() / (weights * counts).sum()
    return torch.tensor(weights, dtype=torch.float32)


def resolve_symmetry(symmetry: str, classes: list[str],
                     mirror_pairs: list[tuple[str, str]] | None,
                     any_angle: bool = True) -> tuple[str, list]:
    """``auto`` is the dihedral group when classes come in mirror-image pairs (a reflection then
    also swaps the labels), else rotations by any angle (``rotate``; ``rot90`` where
    ``any_angle`` is False), which never change a class.

    Any-angle rotations matter for small sets: on MiraBest (818 training sources) they took
    validation accuracy from 0.729 (dihedral) to 0.750, and 0.773 to 0.845 on confident
    sources, in 30-epoch runs of the default network (bench/RESULTS.md)."""
    pairs = find_mirror_pairs(classes) if mirror_pairs is None else list(mirror_pairs)
    for a, b in pairs:
        if a not in classes or b not in classes:
            raise TrainError(f"--mirror-pairs {a}:{b}: both must be classes ({', '.join(classes)})")
    if symmetry == "auto":
        symmetry = "dihedral" if pairs else "rotate" if any_angle else "rot90"
    return symmetry, pairs if symmetry == "dihedral" else []


class _Batches(torch.utils.data.Dataset):
    """A dataset whose items are whole batches, read with one gather per shard; with
    ``n_pixel_classes`` the targets are per-pixel class maps built from the masks."""

    def __init__(self, data: PreparedDataset, n_pixel_classes: int | None = None):
        self.data = data
        self.n_pixel_classes = n_pixel_classes

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, indices):
        images, labels = self.data.batch(indices)
        if self.n_pixel_classes:
            labels = mask_to_target(self.data.masks(indices), labels, self.n_pixel_classes - 2)
        return torch.from_numpy(images), torch.from_numpy(labels)


class _BalancedSampler(torch.utils.data.Sampler):
    """Class-balanced sampling with replacement, the same epoch length, split over ranks."""

    def __init__(self, labels: np.ndarray, seed: int, dist_info: Distributed):
        counts = np.bincount(labels, minlength=labels.max() + 1).astype(np.float64)
        self.weights = torch.tensor(1.0 / counts[labels])
        self.seed, self.dist, self.epoch = seed, dist_info, 0
        self.n = math.ceil(len(labels) / dist_info.world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        total = self.n * self.dist.world_size
        chosen = torch.multinomial(self.weights, total, replacement=True, generator=generator)
        return iter(chosen[self.dist.rank::self.dist.world_size].tolist())


def _loader(data: PreparedDataset, sampler, batch_size: int, drop_last: bool, workers: int,
            device: torch.device, n_pixel_classes: int | None = None
            ) -> torch.utils.data.DataLoader:
    batches = torch.utils.data.BatchSampler(sampler, batch_size, drop_last)
    return torch.utils.data.DataLoader(_Batches(data, n_pixel_classes), sampler=batches,
                                       batch_size=None,
                                       num_workers=workers, pin_memory=device.type == "cuda",
                                       persistent_workers=workers > 0)


def logits_of(model: torch.nn.Module, data: PreparedDataset, device: torch.device,
              dtype: torch.dtype | None, batch_size: int = 256, pooled: bool = True
              ) -> tuple[np.ndarray, np.ndarray]:
    """Logits (pooled over the model's group) and labels of a whole prepared split."""
    model.eval()
    outputs, labels = [], []
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            images, y = data.batch(np.arange(start, min(start + batch_size, len(data))))
            x = torch.from_numpy(images).to(device).contiguous(memory_format=torch.channels_last)
            with autocast(device, dtype):
                logits = model(x, pooled=pooled)
            outputs.append(logits.float().cpu().numpy())
            labels.append(y)
    n_classes = model.net.head[-1].out_features
    if not outputs:
        return np.zeros((0, n_classes), np.float32), np.zeros(0, np.int64)
    return np.concatenate(outputs), np.concatenate(labels)


def pixel_confusion(model: torch.nn.Module, data: PreparedDataset, device: torch.device,
                    dtype: torch.dtype | None, n_classes: int, batch_size: int = 64,
                    pooled: bool = True) -> tuple[np.ndarray, float]:
    """Pixel confusion matrix and mean loss of a U-Net over a whole prepared split."""
    model.eval()
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    loss_sum, seen = 0.0, 0
    batches = _Batches(data, n_classes)
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            images, target = batches[np.arange(start, min(start + batch_size, len(data)))]
            x = images.to(device).contiguous(memory_format=torch.channels_last)
            with autocast(device, dtype):
                logits = model(x, pooled=pooled)
            logits, target = logits.float().cpu(), target
            loss_sum += float(segmentation_loss(logits, target)) * len(target)
            seen += len(target)
            cm += confusion_matrix(target.numpy().ravel(), logits.argmax(1).numpy().ravel(),
                                   n_classes)
    return cm, loss_sum / max(seen, 1)


def _validate(model, val_set: PreparedDataset, device, dtype, classes: list[str],
              segment: bool) -> tuple[float, dict, float]:
    """Validation loss, metrics, and the figure early stopping watches (macro-F1 or mean IoU)."""
    if segment:
        cm, loss = pixel_confusion(model, val_set, device, dtype, len(classes))
        metrics = segmentation_metrics(cm, classes)
        return loss, metrics, metrics["mean_iou"]
    logits, labels = logits_of(model, val_set, device, dtype)
    loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels))) \
        if len(labels) else 0.0
    metrics = classification_metrics(labels, logits.argmax(1), classes)
    return loss, metrics, metrics["macro_f1"]


def _pixel_counts(data: PreparedDataset, n_classes: int) -> np.ndarray:
    counts = np.zeros(n_classes, dtype=np.int64)
    batches = _Batches(data, n_classes)
    for start in range(0, len(data), 256):
        _, target = batches[np.arange(start, min(start + 256, len(data)))]
        counts += np.bincount(target.numpy().ravel(), minlength=n_classes)
    return counts


def _lr_lambda(options: TrainOptions, steps_per_epoch: int):
    total = max(1, options.epochs * steps_per_epoch)
    warmup = max(1, int(options.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _prepared_data(data: str, run_dir: str, prepare_kwargs: dict | None, resume: bool,
                   is_main: bool) -> str:
    """A prepared dataset path; raw cutouts are prepared into ``RUN/prepared`` first."""
    if is_prepared_dataset(data):
        return data
    target = os.path.join(run_dir, "prepared")
    if is_prepared_dataset(target) and resume:
        return target
    if not os.path.exists(data):
        raise TrainError(f"--data {data}: no such file or directory")
    if is_main:
        from galcnn.prepare import PrepareError, prepare

        kwargs = dict(prepare_kwargs or {})
        try:
            result = prepare([data], target, overwrite=True, **kwargs)
        except PrepareError as exc:
            raise TrainError(f"preparing {data}: {exc}") from exc
        for path, problem in result.failures:
            logger.warning("prepare: %s: %s", path, problem)
        logger.info("prepared %d samples from %s into %s (%d failed)", result.n_samples, data,
                    target, len(result.failures))
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    return target


def _check_run_dir(run_dir: str, resume: bool, overwrite: bool) -> None:
    if resume or not os.path.exists(run_dir):
        return
    if any(os.path.exists(os.path.join(run_dir, n)) for n in ("last.pt", "best.pt", "config.json")):
        if not overwrite:
            raise TrainError(f"{run_dir} already holds a run; use --resume to continue it or "
                             "--overwrite to start again")
        for name in ("last.pt", "best.pt", "config.json", "metrics.csv", "metrics.json"):
            if os.path.exists(os.path.join(run_dir, name)):
                os.remove(os.path.join(run_dir, name))


def _write_json(path: str, value) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2)
    os.replace(tmp, path)


def _write_metrics_csv(path: str, history: list[dict]) -> None:
    tmp = f"{path}.tmp"
    columns = SEGMENT_METRIC_COLUMNS if history and "val_mean_iou" in history[0] \
        else METRIC_COLUMNS
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in history:
            writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k])
                             for k in columns})
    os.replace(tmp, path)


def _init_from(net: torch.nn.Module, path: str, freeze: int) -> None:
    """Copy every weight whose name and shape match (a new head when the classes differ)."""
    state = load_checkpoint(path)["model"]
    own = net.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise TrainError(f"--init-from {path}: no layer matches this architecture")
    net.load_state_dict(matched, strict=False)
    skipped = sorted(set(own) - set(matched))
    logger.info("init from %s: %d tensors copied, %d new (%s)", path, len(matched), len(skipped),
                ", ".join(sorted({k.split(".")[0] + "." + k.split(".")[1] for k in skipped}))[:120]
                if skipped else "none")
    blocks = net.down if hasattr(net, "down") else net.features
    for index, module in enumerate(blocks):
        if index < freeze:
            for parameter in module.parameters():
                parameter.requires_grad_(False)


def train(data: str, run_dir: str, options: TrainOptions | None = None, *,
          prepare_kwargs: dict | None = None, resume: bool = False, overwrite: bool = False,
          on_epoch_end: Callable[[dict], None] | None = None,
          progress: Callable[[int, int], Callable[[int], None]] | None = None,
          command: str | None = None) -> TrainResult | None:
    """Train a classifier on ``data`` (prepared dataset or raw cutouts) into ``run_dir``.

    ``on_epoch_end(row)`` is called after each epoch's checkpoint is written; ``progress(epoch,
    n_batches)`` returns ``advance(n_images)`` for a live display. Returns None on ranks other
    than 0 of a distributed job.
    """
    started = time.monotonic()
    options = options or TrainOptions()
    options.check()
    options = options.resolved()
    dist_info = distributed_from_env()
    try:
        device = select_device(options.device, dist_info.local_rank)
    except ValueError as exc:
        raise TrainError(str(exc)) from exc
    init_distributed(dist_info, device)
    try:
        return _train(data, run_dir, options, dist_info, device, prepare_kwargs, resume,
                      overwrite, on_epoch_end, progress, command, started)
    finally:
        close_distributed()


def _train(data, run_dir, options, dist_info, device, prepare_kwargs, resume, overwrite,
           on_epoch_end, progress, command, started) -> TrainResult | None:
    if dist_info.is_main:
        _check_run_dir(run_dir, resume, overwrite)
        os.makedirs(run_dir, exist_ok=True)
    if dist_info.enabled:
        torch.distributed.barrier()
    last_path = os.path.join(run_dir, "last.pt")
    if resume and not os.path.isfile(last_path):
        raise TrainError(f"--resume: {last_path} not found; nothing to resume")
    data_path = _prepared_data(data, run_dir, prepare_kwargs, resume, dist_info.is_main)
    try:
        train_set = PreparedDataset(data_path, "train")
        val_set = PreparedDataset(data_path, "val")
    except ValueError as exc:
        raise TrainError(str(exc)) from exc
    metadata = train_set.metadata
    segment = options.segment
    cutout_classes = train_set.classes
    if len(train_set) == 0:
        raise TrainError(f"{data_path}: no training samples (a labelled prepared set is "
                         "needed: the labels choose the training split)")
    if segment:
        if not train_set.has_masks:
            raise TrainError(f"{data_path}: holds no masks; prepare it with --masks auto or "
                             "--masks hdu:NAME to train a U-Net")
        if options.symmetry == "rotate":
            raise TrainError("--task segment supports --symmetry none, rot90 or dihedral")
        classes = segmentation_classes(cutout_classes)
    else:
        classes = cutout_classes
        if len(classes) < 2:
            raise TrainError(f"{data_path}: training needs at least 2 classes, found {classes}")
    if len(val_set) == 0:
        logger.warning("%s has no validation split; early stopping and calibration use the "
                       "training set (prepare with --val-fraction > 0)", data_path)
        val_set = PreparedDataset(data_path, "train")
    train_labels = train_set.labels
    counts = (_pixel_counts(train_set, len(classes)) if segment
              else np.bincount(train_labels, minlength=len(classes)))
    symmetry, pairs = resolve_symmetry(options.symmetry, cutout_classes, options.mirror_pairs,
                                       any_angle=not segment)
    swap = mirror_permutation(classes, pairs) if pairs else None
    size = list(metadata["size"])
    elements = elements_of(symmetry, size)
    spec = {"arch": options.arch, "n_bands": int(metadata["n_bands"]),
            "n_classes": len(classes), "size": size, "width": options.width,
            "dropout": options.dropout, "pool_elements": [list(e) for e in elements],
            "mirror_swap": swap}
    if segment:
        spec["depth"] = options.depth
        del spec["size"]

    seed_everything(options.seed, -1)
    model = build_model(spec)
    if options.init_from and not resume:
        _init_from(model.net, options.init_from, options.freeze)
    model = model.to(device).to(memory_format=torch.channels_last)
    ddp = (torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
        if dist_info.enabled else model)

    if options.balanced_sampling:
        sampler = _BalancedSampler(train_labels, options.seed, dist_info)
    else:
        sampler = torch.utils.data.DistributedSampler(
            range(len(train_set)), num_replicas=dist_info.world_size, rank=dist_info.rank,
            shuffle=True, seed=options.seed)
    per_rank_batch = max(1, options.batch_size // dist_info.world_size)
    drop_last = len(sampler) > per_rank_batch
    workers = loader_workers(device, options.workers, dist_info.world_size)
    loader = _loader(train_set, sampler, per_rank_batch, drop_last, workers, device,
                     len(classes) if segment else None)
    steps_per_epoch = max(1, len(loader))

    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=options.lr, weight_decay=options.weight_decay)
    if options.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=options.lr, total_steps=options.epochs * steps_per_epoch,
            pct_start=min(0.5, max(options.warmup_epochs / options.epochs, 0.05)))
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                      _lr_lambda(options, steps_per_epoch))
    dtype = amp_dtype(device, options.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    weights = class_weights_for(counts, options.class_weights)
    weights = weights.to(device) if weights is not None else None

    card = {
        "task": options.task, "classes": classes, "cutout_classes": cutout_classes,
        "bands": metadata.get("bands"),
        "n_bands": int(metadata["n_bands"]), "size": size, "stretch": metadata["stretch"],
        "prepare": metadata.get("options", {}), "band_pattern": metadata.get("band_pattern"),
        "model": spec, "symmetry": symmetry, "mirror_pairs": [list(p) for p in pairs],
        "temperature": 1.0, "galcnn_version": __version__, "torch_version": str(torch.__version__),
        "data": {"path": os.path.abspath(data_path), "train_counts": counts.tolist(),
                 "n_train": len(train_set), "n_val": len(val_set)},
        "training": {**asdict(options), "mirror_pairs": [list(p) for p in pairs]},
    }
    trainer = {"epoch": -1, "best_score": None, "best_epoch": -1, "bad_epochs": 0,
               "history": [], "stopped_early": False}
    if resume:
        state = load_checkpoint(last_path, map_location=device)
        if state["card"]["classes"] != classes or state["card"]["model"] != spec:
            raise TrainError(f"--resume: {last_path} was trained with other classes or model "
                             "options; start a new run directory")
        model.net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        trainer = state["trainer"]
        set_rng_states(state["rng"])
        logger.info("resuming %s after epoch %d", run_dir, trainer["epoch"] + 1)

    if dist_info.is_main:
        _write_json(os.path.join(run_dir, "config.json"), {
            "command": command or " ".join(shlex.quote(a) for a in sys.argv),
            "data": os.path.abspath(data), "prepared": os.path.abspath(data_path),
            "options": card["training"], "symmetry": symmetry, "device": str(device),
            "world_size": dist_info.world_size, "amp": str(dtype) if dtype else None,
            "loader_workers": workers, "parameters": count_parameters(model),
            "galcnn_version": __version__, "torch_version": str(torch.__version__),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        logger.info("training %s on %s: %d train / %d val samples, %d classes, symmetry %s, "
                    "%d parameters", options.arch, device, len(train_set), len(val_set),
                    len(classes), symmetry, count_parameters(model))

    best_path = os.path.join(run_dir, "best.pt")
    higher_is_better = options.monitor != "loss"
    score_name = "mean IoU" if segment else "macro-F1"
    for epoch in range(trainer["epoch"] + 1, options.epochs):
        if trainer["stopped_early"]:
            break
        generator = seed_everything(options.seed, epoch)
        sampler.set_epoch(epoch)
        model.train()
        epoch_start = time.monotonic()
        advance = progress(epoch, steps_per_epoch) if progress and dist_info.is_main else None
        loss_sum = correct = seen = 0.0
        for images, labels in loader:
            x = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = labels.to(device, non_blocking=True)
            x, y = random_elements(x, y, elements, swap, generator)
            if symmetry == "rotate":
                x = random_rotations(x, generator)
            with autocast(device, dtype):
                logits = ddp(x, pooled=False)
                if segment:
                    loss = segmentation_loss(logits.float(), y, weights, options.label_smoothing)
                else:
                    loss = F.cross_entropy(logits.float(), y, weight=weights,
                                           label_smoothing=options.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_sum += loss.item() * len(y)
            hits = (logits.detach().argmax(1) == y).float()
            correct += hits.flatten(1).mean(1).sum().item() if segment else hits.sum().item()
            seen += len(y)
            if advance:
                advance(len(y))
        train_seconds = time.monotonic() - epoch_start

        val_loss, val_metrics, val_score = _validate(model, val_set, device, dtype, classes,
                                                     segment)
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1),
               "train_accuracy": correct / max(seen, 1), "val_loss": val_loss,
               "val_accuracy": val_metrics["accuracy"],
               ("val_mean_iou" if segment else "val_macro_f1"): val_score,
               "lr": float(optimizer.param_groups[0]["lr"]),
               "images_per_s": seen * dist_info.world_size / max(train_seconds, 1e-9),
               "seconds": time.monotonic() - epoch_start}
        trainer["history"].append(row)
        score = val_score if higher_is_better else -val_loss
        improved = trainer["best_score"] is None or score > trainer["best_score"] + 1e-6
        if improved:
            trainer.update(best_score=score, best_epoch=epoch + 1, bad_epochs=0)
        else:
            trainer["bad_epochs"] += 1
        trainer["epoch"] = epoch
        if trainer["bad_epochs"] >= options.patience:
            trainer["stopped_early"] = True
        if dist_info.is_main:
            state = {"card": {**card, "epoch": epoch + 1, "val_metrics": val_metrics},
                     "model": model.net.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                     "trainer": trainer, "rng": rng_states()}
            if improved:
                save_checkpoint(best_path, state)
            save_checkpoint(last_path, state)
            _write_metrics_csv(os.path.join(run_dir, "metrics.csv"), trainer["history"])
            logger.info("epoch %d/%d: loss %.4f acc %.3f | val loss %.4f acc %.3f %s %.3f"
                        "%s | %.0f images/s", epoch + 1, options.epochs, row["train_loss"],
                        row["train_accuracy"], val_loss, row["val_accuracy"], score_name,
                        val_score, " *" if improved else "", row["images_per_s"])
        if on_epoch_end:
            on_epoch_end(row)
        if trainer["stopped_early"] and dist_info.is_main:
            logger.info("early stop: no %s improvement in %d epochs", options.monitor,
                        options.patience)

    if not dist_info.is_main:
        return None
    finalise = finalise_segmentation_run if segment else finalise_run
    metrics = finalise(run_dir, model, val_set, data_path, classes, device, dtype, trainer)
    return TrainResult(run_dir=run_dir, classes=classes, epochs_run=trainer["epoch"] + 1,
                       best_epoch=trainer["best_epoch"], metrics=metrics,
                       stopped_early=trainer["stopped_early"],
                       elapsed_s=time.monotonic() - started, history=trainer["history"])


def finalise_segmentation_run(run_dir: str, model, val_set: PreparedDataset, data_path: str,
                              classes: list[str], device: torch.device, dtype,
                              trainer: dict) -> dict:
    """Pixel metrics of the best U-Net (pooled over its group) on validation and test."""
    best_path = os.path.join(run_dir, "best.pt")
    state = load_checkpoint(best_path, map_location=device)
    model.net.load_state_dict(state["model"])
    cm, _ = pixel_confusion(model, val_set, device, dtype, len(classes))
    metrics = {"split": "val", **segmentation_metrics(cm, classes),
               "best_epoch": trainer["best_epoch"], "epochs_run": trainer["epoch"] + 1,
               "classes": classes}
    test_set = PreparedDataset(data_path, "test")
    if len(test_set):
        test_cm, _ = pixel_confusion(model, test_set, device, dtype, len(classes))
        metrics["test"] = segmentation_metrics(test_cm, classes)
    _write_final(run_dir, state, metrics, trainer["history"], cm, classes)
    return metrics


def _write_final(run_dir: str, state: dict, metrics: dict, history: list[dict], cm,
                 classes: list[str]) -> None:
    """best.pt without the resume-only states and with the final metrics, metrics.json, plots."""
    from galcnn.plots import plot_confusion, plot_learning_curves

    state["card"]["metrics"] = {k: v for k, v in metrics.items() if k != "test"}
    for key in ("optimizer", "scheduler", "scaler", "rng"):
        state.pop(key, None)
    save_checkpoint(os.path.join(run_dir, "best.pt"), state)
    _write_json(os.path.join(run_dir, "metrics.json"), metrics)
    plot_learning_curves(history, os.path.join(run_dir, "learning_curves.png"))
    plot_confusion(np.asarray(cm), classes, os.path.join(run_dir, "confusion_matrix.png"))


def finalise_run(run_dir: str, model, val_set: PreparedDataset, data_path: str,
                 classes: list[str], device: torch.device, dtype, trainer: dict) -> dict:
    """Calibrate the best model on the validation split; write metrics.json and the plots."""
    best_path = os.path.join(run_dir, "best.pt")
    state = load_checkpoint(best_path, map_location=device)
    model.net.load_state_dict(state["model"])
    logits, labels = logits_of(model, val_set, device, dtype)
    temperature = fit_temperature(logits, labels)
    probs_before, probs_after = softmax(logits), softmax(logits, temperature)
    metrics = {"split": "val", **classification_metrics(labels, logits.argmax(1), classes),
               "ece_before": expected_calibration_error(probs_before, labels),
               "ece_after": expected_calibration_error(probs_after, labels),
               "temperature": temperature, "best_epoch": trainer["best_epoch"],
               "epochs_run": trainer["epoch"] + 1, "classes": classes}
    test_set = PreparedDataset(data_path, "test")
    if len(test_set):
        test_logits, test_labels = logits_of(model, test_set, device, dtype)
        metrics["test"] = {**classification_metrics(test_labels, test_logits.argmax(1), classes),
                           "ece": expected_calibration_error(softmax(test_logits, temperature),
                                                             test_labels)}
    state["card"]["temperature"] = temperature
    _write_final(run_dir, state, metrics, trainer["history"], metrics["confusion_matrix"],
                 classes)
    return metrics
