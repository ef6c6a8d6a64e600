"""Classification metrics and calibration.

Macro-F1 and per-class recall are reported beside accuracy because survey classes are
imbalanced: a model that never predicts ``merger`` can still score 0.8 accuracy on GZ1.
Softmax outputs are beliefs, not probabilities; a temperature fitted on the validation split
(Guo et al. 2017) makes them closer to frequencies, which expected calibration error measures.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["confusion_matrix", "classification_metrics", "segmentation_metrics",
           "expected_calibration_error", "fit_temperature", "softmax"]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``cm[i, j]``: samples of true class i predicted as j."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, macro-F1 over classes present in ``y_true``, per-class precision/recall/F1."""
    cm = confusion_matrix(y_true, y_pred, len(classes))
    support = cm.sum(1)
    predicted = cm.sum(0)
    tp = np.diag(cm)
    precision = np.divide(tp, predicted, out=np.zeros(len(classes)), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(len(classes)), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(len(classes)), where=denom > 0)
    present = support > 0
    return {
        "n": int(cm.sum()),
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                             "f1": float(f1[i]), "support": int(support[i])}
                      for i, name in enumerate(classes)},
        "confusion_matrix": cm.tolist(),
    }


def segmentation_metrics(cm: np.ndarray, classes: list[str]) -> dict:
    """Pixel accuracy, per-class IoU, and mean IoU over classes present, from a pixel
    confusion matrix (``cm[i, j]``: pixels of true class i predicted as j)."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(1), cm.sum(0)
    union = support + predicted - tp
    iou = np.divide(tp, union, out=np.zeros(len(classes)), where=union > 0)
    recall = np.divide(tp, support, out=np.zeros(len(classes)), where=support > 0)
    present = support > 0
    return {
        "n_pixels": int(cm.sum()),
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "mean_iou": float(iou[present].mean()) if present.any() else 0.0,
        "per_class": {name: {"iou": float(iou[i]), "recall": float(recall[i]),
                             "support": int(support[i])} for i, name in enumerate(classes)},
        "confusion_matrix": cm.tolist(),
    }


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """Mean |confidence - accuracy| over equal-width confidence bins, weighted by bin size."""
    probs = np.asarray(probs)
    if len(probs) == 0:
        return float("nan")
    confidence = probs.max(1)
    correct = probs.argmax(1) == np.asarray(y_true)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        inside = bins == b
        if inside.any():
            ece += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(ece)


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """The temperature T minimising the negative log-likelihood of softmax(logits / T)."""
    if len(logits) == 0:
        return 1.0
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(y_true), dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    return temperature if np.isfinite(temperature) and 0.05 < temperature < 20 else 1.0
