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

from galcnn.choices import SPLITS, unknown_choice
from galcnn.data.dataset import PreparedDataset, is_prepared_dataset
from galcnn.data.inputs import collect_sources
from galcnn.data.labels import resolve_labels
from galcnn.errors import GalcnnError
from galcnn.inference import dataset_logits, forward
from galcnn.metrics import classification_metrics, expected_calibration_error, softmax
from galcnn.runner.model import LoadedModel, open_model
from galcnn.runner.pipeline import InputPipeline, Problem, ReadingOverrides
from galcnn.runtime import inference_batch_size

__all__ = ["evaluate", "EvaluateOptions", "EvaluateResult", "EvaluateError"]


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


@dataclass
class EvaluateOptions(ReadingOverrides):
    """What ``evaluate`` scores and how."""

    split: str = "all"
    """The split of a prepared set (``all``, ``train``, ``val``, ``test``)."""
    classes: list[str] | None = None
    """Score only samples of these classes (each one of the model's)."""
    tta: bool = True
    """Pool over the model's symmetry group (the validated model); False: the bare network."""
    device: str = "auto"
    amp: bool = True
    """False: float32 on a GPU, as a ``--no-amp`` training run validated."""
    batch_size: int | None = None
    workers: int | None = None
    labels: str | None = None
    """Raw cutouts: a label table, read as ``prepare`` reads one (the four fields below)."""
    id_column: str | None = None
    label_column: str | None = None
    where: dict[str, str] | None = None


def evaluate(model_path: str, data: str, options: EvaluateOptions | None = None,
             **changes) -> EvaluateResult:
    """Accuracy, macro-F1, per-class precision/recall, confusion matrix and calibration (ECE
    with the model's temperature) of ``model_path`` on ``data`` (prepared dataset or raw
    cutouts with labels, found as ``prepare`` finds them); ``changes`` are fields of
    :class:`EvaluateOptions` (``evaluate(run, data, split="val")``)."""
    options = replace(options or EvaluateOptions(), **changes)
    if options.split not in SPLITS:
        raise EvaluateError(unknown_choice("split", options.split, SPLITS))
    model = open_model(model_path, "classify", "evaluate", device=options.device,
                       amp=options.amp, pooled=options.tta, error=EvaluateError)
    card = model.card
    unknown = [name for name in options.classes or () if name not in card.classes]
    if unknown:
        raise EvaluateError(f"class(es) {', '.join(unknown)} not among the model's classes "
                            f"({', '.join(card.classes)})")
    batch_size = inference_batch_size(options.batch_size, model.device)
    split = options.split if is_prepared_dataset(data) else "all"
    if is_prepared_dataset(data):
        logits, label_index, files, unknown = _prepared(model, data, split, options.classes,
                                                        batch_size)
        failures: list[tuple[str, str]] = []
    else:
        logits, label_index, files, unknown, failures = _raw(model, data, options, batch_size)
    classes, temperature = card.classes, float(card.temperature)
    metrics = {"model": os.path.abspath(model_path), "data": os.path.abspath(data),
               "split": split, "tta": options.tta, "n_unknown_class": unknown,
               "classes": classes, "failures": [{"file": f, "problem": p} for f, p in failures],
               **classification_metrics(label_index, logits.argmax(1), classes),
               "ece": expected_calibration_error(softmax(logits, temperature), label_index),
               "ece_uncalibrated": expected_calibration_error(softmax(logits), label_index),
               "temperature": temperature}
    return EvaluateResult(metrics, softmax(logits, temperature).astype(np.float32),
                          label_index, files, failures)


def _prepared(model: LoadedModel, path: str, split: str, chosen, batch_size: int):
    """Logits of the un-augmented labelled rows of a prepared split (of the ``chosen``
    classes), labels renumbered to the model's classes."""
    card = model.card
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
    logits, labels = dataset_logits(model.model, dataset, model.device, model.dtype, batch_size)
    return logits, labels, [r["file"] for r in dataset.rows], len(rows) - len(dataset.rows)


def _raw(model: LoadedModel, data: str, options: EvaluateOptions, batch_size: int):
    """Logits of labelled raw cutouts read through the recipe, and the files that failed."""
    recipe = options.recipe(model.card.preprocess)
    try:
        sources, _, failures = collect_sources([data], band_pattern=recipe.band_pattern,
                                               bands=recipe.bands, require_any=True)
        found = resolve_labels(sources, [data], table=options.labels,
                               id_column=options.id_column, label_column=options.label_column,
                               where=options.where)
    except ValueError as exc:
        raise EvaluateError(str(exc)) from exc
    if found.labels is None:
        raise EvaluateError(f"{data}: no labels (a labels.csv inside it, --labels TABLE, or "
                            "class-named folders)")
    index = {name: i for i, name in enumerate(model.card.classes)}
    labelled = [s for s in sources if s in found.labels
                and (not options.classes or found.labels[s] in options.classes)]
    known = [s for s in labelled if found.labels[s] in index]
    if not known:
        raise EvaluateError(f"{data}: no labelled cutout of the model's classes "
                            f"({', '.join(model.card.classes)})")
    outputs, label_index, files = [], [], []
    pipeline = InputPipeline(recipe, model.device, batch_size, workers=options.workers)
    for event in pipeline.events(known):
        if isinstance(event, Problem):
            failures.append((event.source.path_text, event.sample.problem))
            continue
        outputs.append(event.apply(
            lambda x: (forward(model.model, x, model.dtype).cpu().numpy(),))[0])
        label_index.extend(index[found.labels[source]] for source, _ in event.items)
        files.extend(source.path_text for source, _ in event.items)
    if not outputs:
        _nothing_usable(data, failures)
    return (np.concatenate(outputs), np.asarray(label_index, dtype=np.int64), files,
            len(labelled) - len(known), failures)


def _nothing_usable(data: str, failures: list[tuple[str, str]]) -> None:
    problems = {problem for _, problem in failures}
    what = (f"every one {problems.pop()}" if len(problems) == 1 else
            f"none could be used (e.g. {failures[0][1]})")
    raise EvaluateError(f"{data}: {len(failures)} labelled cutout(s), {what}; e.g. "
                        f"{failures[0][0]}")
