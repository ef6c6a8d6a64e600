"""From probability maps to objects: a class per pixel, then connected, labelled objects."""

from __future__ import annotations

import numpy as np
from skimage import measure

from galcnn.data.masks import drop_small

__all__ = ["class_mask", "label_objects"]

ROWS = 512
"""Rows per block when walking maps that may be memory-mapped."""


def class_mask(probs: np.ndarray, threshold: float | None) -> np.ndarray:
    """Class index per pixel: the arg-max, or with ``threshold`` the best foreground class
    where ``1 - p(background) >= threshold`` (background elsewhere)."""
    ny = probs.shape[1]
    mask = np.zeros(probs.shape[1:], dtype=np.int16)
    for start in range(0, ny, ROWS):
        p = np.asarray(probs[:, start:start + ROWS])
        if threshold is None:
            mask[start:start + ROWS] = p.argmax(0)
        else:
            foreground = 1.0 - p[0] >= threshold
            mask[start:start + ROWS] = np.where(foreground, 1 + p[1:].argmax(0), 0)
    return mask


def label_objects(mask: np.ndarray, min_area: int = 5, watershed: bool = False) -> np.ndarray:
    """int32 map of connected foreground objects (8-connected), small ones removed; with
    ``watershed``, touching objects are split at the saddles of their distance transform."""
    labels = drop_small(measure.label(mask > 0, connectivity=2).astype(np.int32), min_area)
    foreground = labels > 0
    if watershed and labels.max():
        from scipy import ndimage
        from skimage.feature import peak_local_max
        from skimage.segmentation import watershed as watershed_transform

        distance = ndimage.distance_transform_edt(foreground)
        peaks = peak_local_max(distance, min_distance=3, labels=labels, exclude_border=False)
        markers = np.zeros(labels.shape, dtype=np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        labels = watershed_transform(-distance, markers, mask=foreground).astype(np.int32)
    return labels
