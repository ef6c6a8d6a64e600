"""The two training tasks as plug-ins of one loop: what is predicted, scored and calibrated.

The loop (:mod:`galcnn.stages.train.loop`) knows nothing of classes or pixels; a task says
which classes the network outputs, what its targets and loss are, how validation scores it
(the figure early stopping watches) and what the end of a run measures.

``classify``  one class per cutout; cross-entropy; macro-F1; a calibration temperature
``segment``   a class per pixel (background, the cutout classes, other objects); cross-entropy
              plus Dice; mean IoU over pixel classes
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.nn import functional as F

from galcnn.anomaly import reference_of
from galcnn.data.dataset import PreparedDataset
from galcnn.data.masks import segmentation_classes
from galcnn.data.recipe import Preprocess
from galcnn.inference import dataset_embeddings, dataset_logits, pixel_confusion
from galcnn.losses import segmentation_loss
from galcnn.metrics import (classification_metrics, expected_calibration_error, fit_temperature,
                            segmentation_metrics, softmax)
from galcnn.data.augment import check_mirror_pairs, find_mirror_pairs
from galcnn.stages.train.options import TrainError, TrainOptions

__all__ = ["Task", "ClassifyTask", "SegmentTask", "TASK_TYPES", "make_task", "Outcome"]


#: A calibration temperature is fitted only on a validation split this large, with this
#: many errors: temperature scaling measures over-confidence from the mistakes.
MIN_CALIBRATION_SAMPLES, MIN_CALIBRATION_ERRORS = 100, 10


@dataclass
class Outcome:
    """The end of a run: metrics of the best model, its temperature, its confusion matrix."""

    metrics: dict
    confusion: np.ndarray
    temperature: float | None = None
    calibration: dict | None = None


def calibrate(logits: np.ndarray, labels: np.ndarray) -> dict:
    """The temperature to divide logits by, fitted (Guo et al. 2017) only when the validation
    split can support it; says which and why."""
    errors = int((logits.argmax(1) != labels).sum()) if len(labels) else 0
    enough = len(labels) >= MIN_CALIBRATION_SAMPLES and errors >= MIN_CALIBRATION_ERRORS
    return {"fitted": enough, "temperature": fit_temperature(logits, labels) if enough else 1.0,
            "n": int(len(labels)), "errors": errors,
            "note": "fitted on the validation split" if enough else
            f"not fitted: {len(labels)} validation samples with {errors} errors (it needs "
            f"at least {MIN_CALIBRATION_SAMPLES} with {MIN_CALIBRATION_ERRORS}); beliefs are "
            "the softmax of the logits"}


class Task:
    """A training task over a prepared dataset's train and validation splits."""

    name: str
    arch: str
    width: int
    dropout: float
    monitor: str
    score_name: str
    """How log lines name the validation figure."""
    score_column: str
    """Its column in ``metrics.csv``."""
    loss_name: str
    counts: str
    """What the confusion matrix counts."""
    any_angle: bool
    """Whether ``symmetry auto`` may choose rotations by any angle."""

    def __init__(self, train_set: PreparedDataset, val_set: PreparedDataset,
                 test_set: PreparedDataset):
        self.train_set, self.val_set, self.test_set = train_set, val_set, test_set
        self.cutout_classes = train_set.classes
        problem = self.unsuitable()
        if problem:
            raise TrainError(f"{train_set.path}: {problem}")

    def unsuitable(self) -> str | None:
        """Why the training split cannot train this task (after the path), or None."""
        return None

    @property
    def classes(self) -> list[str]:
        return self.cutout_classes

    def resolve(self, options: TrainOptions) -> TrainOptions:
        """Options with every ``auto``/None replaced by this task's default, checked."""
        if options.monitor not in ("auto", "loss", self.monitor):
            raise TrainError(f"--monitor {options.monitor} does not apply to --task {self.name}")
        return replace(options, arch=self.arch if options.arch == "auto" else options.arch,
                       width=options.width or self.width,
                       dropout=self.dropout if options.dropout is None else options.dropout,
                       monitor=self.monitor if options.monitor == "auto" else options.monitor)

    def resolve_symmetry(self, options: TrainOptions) -> tuple[str, list[tuple[str, str]]]:
        """``auto`` is the dihedral group when classes come in mirror-image pairs (a
        reflection then also swaps the labels), else rotations by any angle (``rotate``;
        ``rot90`` where the task cannot take them), which never change a class.

        Any-angle rotations matter for small sets: on MiraBest (818 training sources) they
        took validation accuracy from 0.729 (dihedral) to 0.750, and 0.773 to 0.845 on
        confident sources, in 30-epoch runs of the default network (bench/RESULTS.md)."""
        classes = self.cutout_classes
        recorded = self.train_set.mirror_pairs
        try:
            pairs = (check_mirror_pairs(options.mirror_pairs, classes)
                     if options.mirror_pairs is not None
                     else recorded if recorded is not None else find_mirror_pairs(classes))
        except ValueError as exc:
            raise TrainError(str(exc)) from exc
        if self.train_set.has_reflected_copies:
            self._check_reflected_copies(pairs, recorded)
        symmetry = options.symmetry
        if symmetry == "auto":
            symmetry = "dihedral" if pairs else "rotate" if self.any_angle else "rot90"
        return symmetry, pairs if symmetry == "dihedral" else []

    def _check_reflected_copies(self, pairs: list[tuple[str, str]],
                                recorded: list[tuple[str, str]] | None) -> None:
        """Mirrored copies stored in the set must carry the labels training gives its own
        mirrored inputs: the same mirror pairs."""
        path = self.train_set.path
        named = find_mirror_pairs(self.cutout_classes)
        if recorded is None:
            if named:
                raise TrainError(f"{path} holds mirrored copies (--augment dihedral) that keep "
                                 "the label of classes whose mirror image is another class "
                                 f"({', '.join(map('/'.join, named))}): it was prepared by an "
                                 "older galcnn; prepare it again")
        elif sorted(map(sorted, pairs)) != sorted(map(sorted, recorded)):
            said = ",".join(map(":".join, recorded)) or "none"
            raise TrainError(f"--mirror-pairs differs from the pairs the mirrored copies in "
                             f"{path} were labelled with ({said}); prepare it again with the "
                             "same --mirror-pairs, or leave the option out")

    def model_args(self, options: TrainOptions, recipe: Preprocess) -> dict:
        return {"n_bands": recipe.n_bands, "n_classes": len(self.classes),
                "size": list(recipe.size), "width": options.width, "dropout": options.dropout}

    def class_counts(self) -> np.ndarray:
        """Training examples per output class (what the class weights balance)."""
        raise NotImplementedError

    def targets(self, data: PreparedDataset, indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None,
             label_smoothing: float, sample_weights: torch.Tensor | None = None
             ) -> torch.Tensor:
        """The batch's loss: ``weights`` per class, ``sample_weights`` per sample (the
        label table's weight column; None when every sample counts 1)."""
        raise NotImplementedError

    def correct(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Sum over the batch of each sample's accuracy, on the device (reading it would
        wait for the device)."""
        hits = (logits.argmax(1) == targets).float()
        return hits.flatten(1).mean(1).sum() if hits.ndim > 1 else hits.sum()

    def validate(self, model, device, dtype) -> tuple[float, dict, float]:
        """Validation loss, metrics, and the score early stopping watches."""
        raise NotImplementedError

    def finalise(self, model, device, dtype) -> Outcome:
        raise NotImplementedError

    def anomaly_reference(self, model, device, dtype, seed: int
                          ) -> tuple[np.ndarray | None, dict]:
        """Training embeddings kept for anomaly scores, and the card's summary of them
        (:mod:`galcnn.anomaly`); none for a task without embeddings."""
        return None, {}


class ClassifyTask(Task):
    name, arch, width, dropout, monitor = "classify", "resnet", 32, 0.3, "macro_f1"
    score_name, score_column, any_angle = "macro-F1", "val_macro_f1", True
    loss_name, counts = "cross-entropy", "cutouts"

    def unsuitable(self) -> str | None:
        if len(self.classes) < 2:
            return f"training needs at least 2 classes, found {self.classes}"
        return None

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.train_set.labels, minlength=len(self.classes))

    def targets(self, data, indices):
        return np.array([data.rows[int(i)]["label_index"] for i in indices], dtype=np.int64)

    def loss(self, logits, targets, weights, label_smoothing, sample_weights=None):
        if sample_weights is None:
            return F.cross_entropy(logits, targets, weight=weights,
                                   label_smoothing=label_smoothing)
        each = F.cross_entropy(logits, targets, weight=weights, label_smoothing=label_smoothing,
                               reduction="none")  # already times the class weight
        counted = sample_weights * (weights[targets] if weights is not None else 1.0)
        return (each * sample_weights).sum() / counted.sum().clamp_min(1e-12)

    def validate(self, model, device, dtype):
        logits, labels = dataset_logits(model, self.val_set, device, dtype)
        loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels))) \
            if len(labels) else 0.0
        metrics = classification_metrics(labels, logits.argmax(1), self.classes)
        return loss, metrics, metrics["macro_f1"]

    def finalise(self, model, device, dtype) -> Outcome:
        """Validation metrics and a temperature fitted on the validation split; test metrics
        with that temperature when the set has a test split."""
        logits, labels = dataset_logits(model, self.val_set, device, dtype)
        calibration = calibrate(logits, labels)
        temperature = calibration["temperature"]
        metrics = {"split": "val", **classification_metrics(labels, logits.argmax(1),
                                                             self.classes),
                   "ece_before": expected_calibration_error(softmax(logits), labels),
                   "ece_after": expected_calibration_error(softmax(logits, temperature), labels),
                   "temperature": temperature, "calibration": calibration}
        if len(self.test_set):
            test_logits, test_labels = dataset_logits(model, self.test_set, device, dtype)
            metrics["test"] = {
                **classification_metrics(test_labels, test_logits.argmax(1), self.classes),
                "ece": expected_calibration_error(softmax(test_logits, temperature),
                                                  test_labels)}
        return Outcome(metrics, np.asarray(metrics["confusion_matrix"]), temperature,
                       calibration)


    def anomaly_reference(self, model, device, dtype, seed):
        return reference_of(dataset_embeddings(model, self.train_set, device, dtype),
                            seed=seed)


class SegmentTask(Task):
    name, arch, width, dropout, monitor = "segment", "unet", 16, 0.0, "mean_iou"
    score_name, score_column, any_angle = "mean IoU", "val_mean_iou", False
    loss_name, counts = "cross-entropy + Dice", "pixels"

    def unsuitable(self) -> str | None:
        if not self.train_set.has_masks:
            return ("holds no masks; prepare it with --masks auto or --masks hdu:NAME to train "
                    "a U-Net")
        return None

    @property
    def classes(self) -> list[str]:
        return segmentation_classes(self.cutout_classes)

    def resolve(self, options):
        if options.symmetry == "rotate":
            raise TrainError("--task segment supports --symmetry none, rot90 or dihedral")
        return super().resolve(options)

    def model_args(self, options, recipe):
        args = super().model_args(options, recipe)
        del args["size"]
        return {**args, "depth": options.depth}

    def class_counts(self) -> np.ndarray:
        counts = np.zeros(len(self.classes), dtype=np.int64)
        for start in range(0, len(self.train_set), 256):
            indices = np.arange(start, min(start + 256, len(self.train_set)))
            counts += np.bincount(self.train_set.pixel_targets(indices).ravel(),
                                  minlength=len(self.classes))
        return counts

    def targets(self, data, indices):
        return data.pixel_targets(indices)

    def loss(self, logits, targets, weights, label_smoothing, sample_weights=None):
        return segmentation_loss(logits, targets, weights, label_smoothing)

    def validate(self, model, device, dtype):
        cm, loss = pixel_confusion(model, self.val_set, device, dtype)
        metrics = segmentation_metrics(cm, self.classes)
        return loss, metrics, metrics["mean_iou"]

    def finalise(self, model, device, dtype) -> Outcome:
        """Pixel metrics of the best U-Net on validation (and test)."""
        cm, _ = pixel_confusion(model, self.val_set, device, dtype)
        metrics = {"split": "val", **segmentation_metrics(cm, self.classes)}
        if len(self.test_set):
            test_cm, _ = pixel_confusion(model, self.test_set, device, dtype)
            metrics["test"] = segmentation_metrics(test_cm, self.classes)
        return Outcome(metrics, cm)


TASK_TYPES: dict[str, type[Task]] = {"classify": ClassifyTask, "segment": SegmentTask}


def make_task(name: str, train_set: PreparedDataset, val_set: PreparedDataset,
              test_set: PreparedDataset) -> Task:
    return TASK_TYPES[name](train_set, val_set, test_set)
