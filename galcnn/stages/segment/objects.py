"""From probability maps to objects: a class per pixel, then connected, labelled objects.

Every map is walked in strips of rows, so the mask and the label map of an image larger than
memory can live in memory-mapped files. Connected objects are found strip by strip
(scikit-image) and joined across strip boundaries with a union-find; numbering each object
by the provisional label of its first strip gives exactly the raster-order numbering of
labelling the whole image at once.
"""

from __future__ import annotations

import numpy as np
from skimage import measure


__all__ = ["ROWS", "class_mask", "label_objects"]

ROWS = 512
"""Rows per strip when walking maps that may be memory-mapped."""


def class_mask(probs: np.ndarray, threshold: float | None, out: np.ndarray) -> np.ndarray:
    """Write into ``out`` the class index per pixel: the arg-max, or with ``threshold`` the
    best foreground class where ``1 - p(background) >= threshold`` (background elsewhere)."""
    for start in range(0, probs.shape[1], ROWS):
        p = np.asarray(probs[:, start:start + ROWS])
        if threshold is None:
            out[start:start + ROWS] = p.argmax(0)
        else:
            foreground = 1.0 - p[0] >= threshold
            out[start:start + ROWS] = np.where(foreground, 1 + p[1:].argmax(0), 0)
    return out


def _find(parent: np.ndarray, label: int) -> int:
    root = label
    while parent[root] != root:
        root = parent[root]
    while parent[label] != root:  # path compression
        parent[label], label = root, parent[label]
    return root


def label_objects(mask: np.ndarray, out: np.ndarray, *, min_area: int = 5,
                  rows: int = ROWS) -> np.ndarray:
    """Write into ``out`` (int32) the 8-connected foreground objects of ``mask`` numbered
    1..n in raster order, objects smaller than ``min_area`` removed."""
    height = mask.shape[0]
    counted = 0
    pairs = []  # provisional labels joined across strip boundaries
    previous = None  # the last row of the strip above and its labels
    for start in range(0, height, rows):
        strip = measure.label(np.asarray(mask[start:start + rows]) > 0, connectivity=2)
        strip = strip.astype(np.int64)
        strip[strip > 0] += counted
        counted = max(counted, int(strip.max()))
        if previous is not None:
            pairs.append(_touching(previous, strip[0]))
        previous = strip[-1].copy()
        out[start:start + rows] = strip
    parent = np.arange(counted + 1)
    for a, b in (np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)):
        root_a, root_b = _find(parent, int(a)), _find(parent, int(b))
        if root_a != root_b:
            parent[max(root_a, root_b)] = min(root_a, root_b)  # the earlier label is the root
    roots = np.array([_find(parent, i) for i in range(counted + 1)])
    area = np.zeros(counted + 1, dtype=np.int64)
    for start in range(0, height, rows):
        area += np.bincount(roots[np.asarray(out[start:start + rows]).ravel()],
                            minlength=counted + 1)
    keep = (area >= max(min_area, 1)) & (np.arange(counted + 1) == roots)
    keep[0] = False
    final = np.zeros(counted + 1, dtype=np.int32)
    final[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)  # roots are in order
    lookup = final[roots]
    for start in range(0, height, rows):
        out[start:start + rows] = lookup[np.asarray(out[start:start + rows])]
    return out


def _touching(above: np.ndarray, below: np.ndarray) -> np.ndarray:
    """Label pairs ``(a, b)`` of 8-connected foreground pixels across two adjacent rows."""
    found = []
    for shift in (-1, 0, 1):
        a = above[max(0, shift):len(above) + min(0, shift)]
        b = below[max(0, -shift):len(below) + min(0, -shift)]
        both = (a > 0) & (b > 0)
        found.append(np.stack([a[both], b[both]], axis=1))
    return np.unique(np.concatenate(found), axis=0)
