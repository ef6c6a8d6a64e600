"""``galcnn evaluate``: a trained classifier's metrics on any labelled set.

It scores exactly the model ``predict`` runs (pooled over its symmetry group, with its
calibration temperature) through the same inference path as training's validation. Raw
cutouts are read through the model card's recipe; a prepared dataset is accepted only when it
was made with the same recipe (bands, size, geometry, stretch, fill). Classes are matched by
name; samples of classes the model does not know are counted and left out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import numpy as np

from galcnn.checkpoint import load_model
from galcnn.choices import SPLITS
from galcnn.data.dataset import PreparedDataset, is_prepared_dataset
from galcnn.data.inputs import collect_sources
from galcnn.data.labels import resolve_labels
from galcnn.data.reader import ReadTask, read_samples
from galcnn.errors import GalcnnError
from galcnn.inference import as_batch, dataset_logits, forward
from galcnn.metrics import classification_metrics, expected_calibration_error, softmax
from galcnn.models import GroupPooled
from galcnn.runtime import (amp_dtype, configure_precision, inference_batch_size, select_device,
                            worker_count)

__all__ = ["evaluate", "EvaluateResult", "EvaluateError"]


class EvaluateError(GalcnnError):
    """The model and the data do not fit together, or the data has no labelled sample."""


@dataclass
class EvaluateResult:
    """``metrics`` (what ``--json`` writes) and the per-sample beliefs behind them."""

    metrics: dict
    beliefs: np.ndarray
    """Calibrated beliefs ``(n, classes)``, in the order of ``files``."""
    labels: np.ndarray
    files: list[str]
    failures: list[tuple[str, str]] = field(default_factory=list)


def evaluate(model_path: str, data: str, *, split: str = "all", device: str = "auto",
             amp: bool = True, tta: bool = True, batch_size: int | None = None, workers: int | None = None,
             labels: str | None = None, id_column: str | None = None,
             label_column: str | None = None, where: dict[str, str] | None = None,
             classes: list[str] | None = None, band_pattern: str | None = None,
             bands: list[str] | None = None) -> EvaluateResult:
    """Accuracy, macro-F1, per-class precision/recall, confusion matrix and calibration (ECE
    with the model's temperature) of ``model_path`` on ``data`` (prepared dataset or raw
    cutouts with labels, found as ``prepare`` finds them). ``classes`` keeps only samples of
    these classes; ``tta=False`` scores the bare network instead of the model pooled over its
    group; ``amp=False`` computes in float32 on a GPU, as a ``--no-amp`` training run
    validated."""
    if split not in SPLITS:
        raise EvaluateError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    torch_device = select_device(device)
    model = load_model(model_path, torch_device)
    card = model.card
    if card.task != "classify":
        raise EvaluateError(f"{model_path}: a {card.task} model; evaluate needs a classifier")
    unknown = [name for name in classes or () if name not in card.classes]
    if unknown:
        raise EvaluateError(f"class(es) {', '.join(unknown)} not among the model's classes "
                            f"({', '.join(card.classes)})")
    if not tta:
        model = GroupPooled(model.net)
    configure_precision(torch_device, amp)
    dtype = amp_dtype(torch_device, amp)
    batch_size = inference_batch_size(batch_size, torch_device)
    if is_prepared_dataset(data):
        logits, label_index, files, unknown = _prepared(model, card, data, split, classes,
                                                        torch_device, dtype, batch_size)
        failures: list[tuple[str, str]] = []
    else:
        split = "all"
        recipe = replace(card.preprocess, **{k: v for k, v in (("band_pattern", band_pattern),
                                                               ("bands", bands)) if v})
        logits, label_index, files, unknown, failures = _raw(
            model, card.classes, classes, recipe, data, torch_device, dtype, batch_size,
            worker_count(workers, device=torch_device),
            dict(table=labels, id_column=id_column, label_column=label_column, where=where))
    classes, temperature = card.classes, float(card.temperature)
    metrics = {"model": os.path.abspath(model_path), "data": os.path.abspath(data),
               "split": split, "tta": tta, "n_unknown_class": unknown, "classes": classes,
               "failures": [{"file": f, "problem": p} for f, p in failures],
               **classification_metrics(label_index, logits.argmax(1), classes),
               "ece": expected_calibration_error(softmax(logits, temperature), label_index),
               "ece_uncalibrated": expected_calibration_error(softmax(logits), label_index),
               "temperature": temperature}
    return EvaluateResult(metrics, softmax(logits, temperature).astype(np.float32),
                          label_index, files, failures)


def _prepared(model, card, path: str, split: str, chosen, device, dtype, batch_size: int):
    """Logits of the un-augmented labelled rows of a prepared split (of the ``chosen``
    classes), labels renumbered to the model's classes."""
    dataset = PreparedDataset(path, None if split == "all" else split)
    differences = card.preprocess.differences(dataset.preprocess)
    if differences:
        raise EvaluateError(f"{path} was prepared differently from the model's inputs ("
                            f"{'; '.join(differences)}); evaluate the raw cutouts instead, "
                            "they are then read with the model's recipe")
    index = {name: i for i, name in enumerate(card.classes)}
    rows = [r for r in dataset.rows if r["transform"] == "identity" and r["label"]
            and (not chosen or r["label"] in chosen)]
    dataset.rows = [{**r, "label_index": index[r["label"]]} for r in rows
                    if r["label"] in index]
    if not dataset.rows:
        raise EvaluateError(f"{path}: no labelled sample of the model's classes "
                            f"({', '.join(card.classes)}) in split {split!r}")
    logits, labels = dataset_logits(model, dataset, device, dtype, batch_size)
    return logits, labels, [r["file"] for r in dataset.rows], len(rows) - len(dataset.rows)


def _raw(model, classes, chosen, recipe, data, device, dtype, batch_size, workers,
         label_options):
    """Logits of labelled raw cutouts read through the recipe, and the files that failed."""
    try:
        sources, _, failures = collect_sources([data], band_pattern=recipe.band_pattern,
                                               bands=recipe.bands, require_any=True)
        found = resolve_labels(sources, [data], **label_options)
    except ValueError as exc:
        raise EvaluateError(str(exc)) from exc
    if found.labels is None:
        raise EvaluateError(f"{data}: no labels (a labels.csv inside it, --labels TABLE, or "
                            "class-named folders)")
    index = {name: i for i, name in enumerate(classes)}
    labelled = [s for s in sources if s in found.labels
                and (not chosen or found.labels[s] in chosen)]
    known = [s for s in labelled if found.labels[s] in index]
    unknown = len(labelled) - len(known)
    if not known:
        raise EvaluateError(f"{data}: no labelled cutout of the model's classes "
                            f"({', '.join(classes)})")
    outputs, label_index, files, batch = [], [], [], []

    def run() -> None:
        images = np.stack([sample.image for _, sample in batch])
        outputs.append(forward(model, as_batch(images, device), dtype).cpu().numpy())
        label_index.extend(index[found.labels[source]] for source, _ in batch)
        files.extend(source.path_text for source, _ in batch)
        batch.clear()

    tasks = [ReadTask(i, s) for i, s in enumerate(known)]
    for sample in read_samples(tasks, recipe, workers=workers, chunk=max(256, batch_size),
                               expected="the model needs"):
        source = known[sample.index]
        if sample.problem:
            failures.append((source.path_text, sample.problem))
            continue
        batch.append((source, sample))
        if len(batch) == batch_size:
            run()
    if batch:
        run()
    if not outputs:
        problems = {problem for _, problem in failures}
        what = (f"every one {problems.pop()}" if len(problems) == 1 else
                f"none could be used (e.g. {failures[0][1]})")
        raise EvaluateError(f"{data}: {len(failures)} labelled cutout(s), {what}; e.g. "
                            f"{failures[0][0]}")
    return (np.concatenate(outputs), np.asarray(label_index, dtype=np.int64), files, unknown,
            failures)
