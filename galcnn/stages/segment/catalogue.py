"""The object catalogue: one row per labelled object, with its position, size and beliefs."""

from __future__ import annotations

import warnings

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS, FITSFixedWarning
from skimage import measure

from galcnn.data.fitsio import ImagePlanes
from galcnn.stages.segment.objects import ROWS

__all__ = ["CATALOGUE_COLUMNS", "catalogue", "celestial_wcs"]

#: Catalogue columns in order; ``p_<class>`` columns follow ``predicted`` (foreground classes).
CATALOGUE_COLUMNS = ("id", "x", "y", "ra", "dec", "area", "bbox_xmin", "bbox_ymin",
                     "bbox_xmax", "bbox_ymax", "flux", "predicted")


def catalogue(labels: np.ndarray, probs: np.ndarray, planes: ImagePlanes, classes: list[str],
              header: fits.Header, background: np.ndarray | None = None) -> Table:
    """One row per object of ``labels``: centroid, RA/Dec, area, box, background-subtracted
    flux, and beliefs averaged over the object's pixels."""
    n = int(labels.max())
    regions = measure.regionprops(labels)
    flux = np.zeros(n + 1)
    beliefs = np.zeros((len(classes), n + 1))
    ny = labels.shape[0]
    for start in range(0, ny, ROWS):
        stop = min(start + ROWS, ny)
        block = labels[start:stop].ravel()
        data = planes.window(start, stop, 0, labels.shape[1])
        if background is not None:
            data = data - np.asarray(background, dtype=np.float32)[:, None, None]
        flux += np.bincount(block, weights=np.nan_to_num(data.sum(0)).ravel(), minlength=n + 1)
        for c in range(len(classes)):
            beliefs[c] += np.bincount(block, weights=np.asarray(probs[c, start:stop]).ravel(),
                                      minlength=n + 1)
    area = np.bincount(labels.ravel(), minlength=n + 1).astype(np.float64)
    beliefs = beliefs / np.maximum(area, 1)[None]
    columns: dict[str, list] = {name: [] for name in CATALOGUE_COLUMNS}
    for region in regions:
        i = region.label
        y, x = region.centroid
        ymin, xmin, ymax, xmax = region.bbox
        columns["id"].append(i)
        columns["x"].append(float(x))
        columns["y"].append(float(y))
        columns["area"].append(int(region.area))
        columns["bbox_xmin"].append(xmin)
        columns["bbox_ymin"].append(ymin)
        columns["bbox_xmax"].append(xmax - 1)
        columns["bbox_ymax"].append(ymax - 1)
        columns["flux"].append(float(flux[i]))
        columns["predicted"].append(classes[1 + int(np.argmax(beliefs[1:, i]))])
    ra, dec = _sky(header, np.array(columns["x"]), np.array(columns["y"]))
    columns["ra"], columns["dec"] = list(ra), list(dec)
    table = Table({k: columns[k] for k in CATALOGUE_COLUMNS})
    if not len(table):
        table = Table(names=CATALOGUE_COLUMNS,
                      dtype=("i4", "f8", "f8", "f8", "f8", "i8", "i8", "i8", "i8", "i8", "f8",
                             "U32"))
    for c, name in enumerate(classes[1:], start=1):
        table[f"p_{name}"] = [float(beliefs[c, region.label]) for region in regions]
    return table


def celestial_wcs(header: fits.Header) -> WCS | None:
    """The header's celestial WCS, or None when it has none (or a broken one)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header).celestial
        except Exception:
            return None
    return wcs if wcs.has_celestial else None


def _sky(header: fits.Header, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    wcs = celestial_wcs(header)
    if wcs is None or not len(x):
        return np.full(len(x), np.nan), np.full(len(x), np.nan)
    ra, dec = wcs.pixel_to_world_values(x, y)
    return np.asarray(ra, dtype=float), np.asarray(dec, dtype=float)
