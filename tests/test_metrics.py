"""Metrics against hand-computed values, calibration error and temperature fitting."""

from __future__ import annotations

import numpy as np

from galcnn.metrics import (classification_metrics, confusion_matrix, expected_calibration_error,
                            fit_temperature, softmax)


def test_metrics_by_hand():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 0, 2])
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[3, 1, 0], [1, 1, 0], [0, 0, 1]]
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["accuracy"] == 5 / 7
    assert m["per_class"]["a"] == {"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4}
    assert m["per_class"]["b"]["precision"] == 0.5 and m["per_class"]["b"]["recall"] == 0.5
    np.testing.assert_allclose(m["macro_f1"], (0.75 + 0.5 + 1.0) / 3)
    np.testing.assert_allclose(m["balanced_accuracy"], (0.75 + 0.5 + 1.0) / 3)


def test_absent_class_is_left_out_of_macro_f1():
    m = classification_metrics(np.array([0, 0, 1]), np.array([0, 0, 1]), ["a", "b", "never"])
    assert m["macro_f1"] == 1.0 and m["per_class"]["never"]["support"] == 0


def test_ece_by_hand():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    y = np.array([0, 1, 0, 0])
    # bin of 0.9: accuracy 0.5 -> |0.9 - 0.5| = 0.4; bin of 0.6: accuracy 1 -> 0.4
    np.testing.assert_allclose(expected_calibration_error(probs, y, n_bins=10), 0.4)
    assert expected_calibration_error(np.eye(3), np.arange(3)) == 0.0


def test_temperature_undoes_overconfidence():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 3)) * 1.5
    y = np.array([rng.choice(3, p=p) for p in softmax(true_logits)])
    overconfident = true_logits * 3.0
    temperature = fit_temperature(overconfident, y)
    np.testing.assert_allclose(temperature, 3.0, rtol=0.1)
    before = expected_calibration_error(softmax(overconfident), y)
    after = expected_calibration_error(softmax(overconfident, temperature), y)
    assert after < before / 2
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0)) == 1.0
