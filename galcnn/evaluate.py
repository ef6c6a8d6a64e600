"""``galcnn evaluate``: a trained model's metrics on any labelled set.

Raw cutouts are prepared with the model's own recorded options (size, stretch, HDU rule), so
the numbers describe what ``predict`` would do on them. Classes are matched by name; samples
of classes the model does not know are counted and left out.
"""

from __future__ import annotations

import os
import tempfile


from galcnn.checkpoint import load_model
from galcnn.dataset import PreparedDataset, is_prepared_dataset
from galcnn.metrics import classification_metrics, expected_calibration_error, softmax
from galcnn.runtime import amp_dtype, select_device

__all__ = ["evaluate", "EvaluateError", "SPLITS"]

SPLITS = ("all", "train", "val", "test")


class EvaluateError(ValueError):
    """The model and the data do not fit together, or the data has no labelled sample."""


def _samples(path: str, split: str, classes: list[str]) -> tuple[PreparedDataset, int]:
    """Un-augmented rows of the split, label indices renumbered to the model's classes."""
    data = PreparedDataset(path, None if split == "all" else split)
    index = {name: i for i, name in enumerate(classes)}
    rows, unknown = [], 0
    for row in data.rows:
        if row["transform"] != "identity" or not row["label"]:
            continue
        if row["label"] not in index:
            unknown += 1
            continue
        rows.append({**row, "label_index": index[row["label"]]})
    data.rows = rows
    return data, unknown


def evaluate(model_path: str, data: str, *, split: str = "all", device: str = "auto",
             tta: bool = True, batch_size: int = 256, prepare_kwargs: dict | None = None,
             workers: int | None = None) -> dict:
    """Accuracy, macro-F1, per-class precision/recall, confusion matrix and calibration (ECE with
    the model's temperature) of ``model_path`` on ``data`` (prepared dataset or raw cutouts)."""
    from galcnn.train import logits_of

    if split not in SPLITS:
        raise EvaluateError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    torch_device = select_device(device)
    model, card = load_model(model_path, torch_device)
    if card.get("task", "classify") != "classify":
        raise EvaluateError(f"{model_path}: a {card.get('task')} model; evaluate needs a "
                            "classifier")
    classes = card["classes"]
    source = data
    with tempfile.TemporaryDirectory(prefix="galcnn-evaluate-") as tmp:
        failures: list[tuple[str, str]] = []
        if not is_prepared_dataset(data):
            data, failures = _prepare_for_model(card, data, os.path.join(tmp, "prepared"),
                                                prepare_kwargs, workers)
            split = "all"
        dataset, unknown = _samples(data, split, classes)
        meta = dataset.metadata
        if int(meta["n_bands"]) != int(card["n_bands"]) or list(meta["size"]) != list(card["size"]):
            raise EvaluateError(
                f"{data}: {meta['n_bands']} band(s) of {meta['size'][1]}x{meta['size'][0]} px, "
                f"but the model expects {card['n_bands']} of {card['size'][1]}x{card['size'][0]}; "
                "give the raw cutouts instead, they are then prepared to fit")
        if len(dataset) == 0:
            raise EvaluateError(f"{data}: no labelled sample of the model's classes "
                                f"({', '.join(classes)}) in split {split!r}")
        logits, labels = logits_of(model, dataset, torch_device, amp_dtype(torch_device),
                                   batch_size=batch_size, pooled=tta)
    temperature = float(card.get("temperature", 1.0))
    return {"model": os.path.abspath(model_path), "data": os.path.abspath(source), "split": split,
            "tta": tta, "n_unknown_class": unknown, "classes": classes,
            "failures": [{"file": f, "problem": p} for f, p in failures],
            **classification_metrics(labels, logits.argmax(1), classes),
            "ece": expected_calibration_error(softmax(logits, temperature), labels),
            "ece_uncalibrated": expected_calibration_error(softmax(logits), labels),
            "temperature": temperature}


def _prepare_for_model(card: dict, data: str, out: str, prepare_kwargs: dict | None,
                       workers: int | None) -> tuple[str, list[tuple[str, str]]]:
    from galcnn.prepare import PrepareError, PrepareOptions, prepare

    options = PrepareOptions.from_dict(card.get("prepare", {}), size=tuple(card["size"]),
                                       augment="none", copies=0, val_fraction=0.0,
                                       test_fraction=0.0)
    kwargs = {k: v for k, v in (prepare_kwargs or {}).items() if v not in (None, {}, [])}
    if card.get("band_pattern") and "band_pattern" not in kwargs:
        kwargs["band_pattern"] = card["band_pattern"]
        kwargs["bands"] = card.get("bands")
    try:
        result = prepare([data], out, options=options, workers=workers, **kwargs)
    except PrepareError as exc:
        raise EvaluateError(f"preparing {data}: {exc}") from exc
    return out, result.failures
