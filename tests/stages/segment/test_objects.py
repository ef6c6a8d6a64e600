"""From probability maps to objects, strip by strip."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import measure

from galcnn.data.masks import drop_small
from galcnn.stages.segment.objects import class_mask, label_objects


def test_argmax_or_a_foreground_threshold():
    probs = np.zeros((3, 2, 2), np.float32)
    probs[:, 0, 0] = (0.5, 0.3, 0.2)   # background wins the arg-max, but 1-p(bg)=0.5
    probs[:, 0, 1] = (0.9, 0.04, 0.06)
    probs[:, 1, 0] = (0.1, 0.2, 0.7)
    probs[:, 1, 1] = (0.2, 0.5, 0.3)
    out = np.zeros((2, 2), np.int16)
    assert class_mask(probs, None, out).tolist() == [[0, 0], [2, 1]]
    assert class_mask(probs, 0.5, out).tolist() == [[1, 0], [2, 1]]


@pytest.mark.parametrize("rows", [1, 2, 3, 7, 64, 1000])
@pytest.mark.parametrize("seed", range(4))
def test_strips_give_the_labels_of_the_whole_image(rows, seed):
    rng = np.random.default_rng(seed)
    mask = (rng.random((61, 47)) < 0.35 + 0.1 * seed).astype(np.int16)
    mask[10:40, 20] = 1  # a long object across many strips
    expected = drop_small(measure.label(mask > 0, connectivity=2).astype(np.int32), 3)
    got = label_objects(mask, np.zeros(mask.shape, np.int32), min_area=3, rows=rows)
    np.testing.assert_array_equal(got, expected)


def test_small_objects_dropped():
    yy, xx = np.mgrid[:40, :60]
    mask = (((yy - 20) ** 2 + (xx - 20) ** 2 < 100) | ((yy - 20) ** 2 + (xx - 37) ** 2 < 100))
    mask = mask.astype(np.int16)
    mask[2, 2] = 1  # a one-pixel speck
    merged = label_objects(mask, np.zeros(mask.shape, np.int32), min_area=5)
    assert merged.max() == 1 and merged[2, 2] == 0
