"""Splitting touching objects: photutils' multi-threshold deblending of each U-Net footprint.

The U-Net says which pixels belong to galaxies (and of which class); two galaxies that touch
come out as one connected footprint. Each footprint is deblended on the image's flux, as
SExtractor and photutils do for detections: the flux (smoothed by a Gaussian of about the
seeing) is re-thresholded at levels between the footprint's minimum and maximum, and a peak
that holds at least ``contrast`` of the footprint's flux becomes its own object, its pixels
assigned by watershed. One footprint at a time, inside its bounding box, so the label map may
be memory-mapped and the cost grows with the number of objects, not the image.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
from scipy import ndimage

from galcnn.stages.segment.objects import ROWS

__all__ = ["deblend_objects", "renumber_in_raster_order"]

SMOOTHING_SIGMA = 1.0
"""Gaussian sigma (pixels) of the smoothing before deblending, as photutils advises."""


def _deblend_call():
    """photutils' ``deblend_sources`` with its keyword names of this version (3.0 renamed
    ``nlevels`` to ``n_levels``) and its progress bar off."""
    from photutils.segmentation import SegmentationImage, deblend_sources

    parameters = inspect.signature(deblend_sources).parameters
    levels = "n_levels" if "n_levels" in parameters else "nlevels"
    quiet = {"progress_bar": False} if "progress_bar" in parameters else {}

    def call(data, footprint, n_pixels, n_levels, contrast):
        segments = SegmentationImage(footprint.astype(np.int32))
        with warnings.catch_warnings():  # mode changes for footprints reaching below zero
            warnings.simplefilter("ignore")
            return deblend_sources(data, segments, n_pixels, contrast=contrast,
                                   **{levels: n_levels}, **quiet).data

    return call


def deblend_objects(labels: np.ndarray, flux: np.ndarray, *, min_area: int = 5,
                    contrast: float = 0.02, n_levels: int = 32,
                    max_area: int = 16384) -> int:
    """Split the objects of ``labels`` (int32, written in place) where their flux has
    separate peaks; the object count afterwards. New objects get new numbers; call
    :func:`renumber_in_raster_order` to number them all in raster order again.

    Footprints larger than ``max_area`` pixels are left whole: far larger than the galaxies
    the U-Net was trained on, they are not touching pairs but a region the model could not
    resolve (on such a region the cost of multi-thresholding grows steeply and noise peaks
    become objects)."""
    deblend = _deblend_call()
    boxes = ndimage.find_objects(np.asarray(labels))
    next_label = len(boxes) + 1
    margin = int(np.ceil(3 * SMOOTHING_SIGMA))
    ny, nx = labels.shape
    for index, box in enumerate(boxes, start=1):
        if box is None:
            continue
        ys, xs = box
        if (ys.stop - ys.start) * (xs.stop - xs.start) < 2 * min_area:
            continue
        footprint = np.asarray(labels[ys, xs]) == index
        if not 2 * min_area <= footprint.sum() <= max_area:
            continue
        y0, y1 = max(ys.start - margin, 0), min(ys.stop + margin, ny)
        x0, x1 = max(xs.start - margin, 0), min(xs.stop + margin, nx)
        smooth = ndimage.gaussian_filter(np.asarray(flux[y0:y1, x0:x1], dtype=np.float64),
                                         SMOOTHING_SIGMA)
        smooth = smooth[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
        try:
            parts = deblend(smooth, footprint, min_area, n_levels, contrast)
        except ValueError:  # photutils could not deblend it (e.g. no valid levels): keep it
            continue
        n_parts = int(parts.max())
        if n_parts <= 1:
            continue
        block = np.asarray(labels[ys, xs]).copy()
        block[footprint & (parts == 0)] = 0  # pixels no part claims
        for part in range(2, n_parts + 1):
            block[parts == part] = next_label
            next_label += 1
        labels[ys, xs] = block
    return next_label - 1


def renumber_in_raster_order(labels: np.ndarray, n_labels: int, rows: int = ROWS) -> int:
    """Number the objects 1..n by their first pixel in raster order (how connected-component
    labelling numbers them), dropping numbers no pixel holds; walks the map in strips."""
    first = np.full(n_labels + 1, np.iinfo(np.int64).max)
    width = labels.shape[1]
    for start in range(0, labels.shape[0], rows):
        flat = np.asarray(labels[start:start + rows]).ravel()
        values, where = np.unique(flat, return_index=True)
        np.minimum.at(first, values, where + start * width)
    present = np.flatnonzero(first[1:] < np.iinfo(np.int64).max) + 1
    order = present[np.argsort(first[present], kind="stable")]
    lookup = np.zeros(n_labels + 1, dtype=np.int32)
    lookup[order] = np.arange(1, len(order) + 1, dtype=np.int32)
    for start in range(0, labels.shape[0], rows):
        labels[start:start + rows] = lookup[np.asarray(labels[start:start + rows])]
    return len(order)
