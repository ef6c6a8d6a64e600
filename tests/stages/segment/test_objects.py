"""From probability maps to objects."""

from __future__ import annotations

import numpy as np

from galcnn.stages.segment.objects import class_mask, label_objects


def test_argmax_or_a_foreground_threshold():
    probs = np.zeros((3, 2, 2), np.float32)
    probs[:, 0, 0] = (0.5, 0.3, 0.2)   # background wins the arg-max, but 1-p(bg)=0.5
    probs[:, 0, 1] = (0.9, 0.04, 0.06)
    probs[:, 1, 0] = (0.1, 0.2, 0.7)
    probs[:, 1, 1] = (0.2, 0.5, 0.3)
    assert class_mask(probs, None).tolist() == [[0, 0], [2, 1]]
    assert class_mask(probs, 0.5).tolist() == [[1, 0], [2, 1]]


def test_small_objects_dropped_and_touching_discs_split():
    yy, xx = np.mgrid[:40, :60]
    mask = (((yy - 20) ** 2 + (xx - 20) ** 2 < 100) | ((yy - 20) ** 2 + (xx - 37) ** 2 < 100))
    mask = mask.astype(np.int16)
    mask[2, 2] = 1  # a one-pixel speck
    merged = label_objects(mask, min_area=5)
    assert merged.max() == 1 and merged[2, 2] == 0
    split = label_objects(mask, min_area=5, watershed=True)
    assert split.max() == 2 and split[20, 15] != split[20, 42]
