"""The object catalogue: one row per labelled object, with its position, size and beliefs."""

from __future__ import annotations

import warnings

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS, FITSFixedWarning

from galcnn.runner.table import Column
from galcnn.stages.segment.objects import ROWS

__all__ = ["CATALOGUE_COLUMNS", "catalogue", "catalogue_columns", "celestial_wcs"]

#: Catalogue columns in order; ``p_<class>`` columns follow ``predicted`` (foreground classes).
CATALOGUE_COLUMNS = ("id", "x", "y", "ra", "dec", "area", "bbox_xmin", "bbox_ymin",
                     "bbox_xmax", "bbox_ymax", "flux", "predicted")


def catalogue_columns(foreground: list[str]) -> list[Column]:
    """The catalogue's columns, declared once: pixel positions (0-based, FITS rows from the
    bottom), ICRS degrees, pixel areas."""
    pixel = [Column(name, "int", "pix") for name in ("bbox_xmin", "bbox_ymin", "bbox_xmax",
                                                      "bbox_ymax")]
    return ([Column("id", "int"), Column("x", "float", "pix", ".3f"),
             Column("y", "float", "pix", ".3f"), Column("ra", "float", "deg", ".7f"),
             Column("dec", "float", "deg", ".7f"), Column("area", "int", "pix2"), *pixel,
             Column("flux", "float", "", ".6g"), Column("predicted")]
            + [Column(f"p_{name}", "float", "", ".6f") for name in foreground])


def catalogue(labels: np.ndarray, probs: np.ndarray, flux: np.ndarray, classes: list[str],
              header: fits.Header) -> Table:
    """One row per object of ``labels``: centroid, RA/Dec, area, box, flux (the sum of
    ``flux``, the background-subtracted band sum, over its pixels) and beliefs averaged over
    its pixels weighted by their positive flux (an object's class is what its light says,
    not its faint outskirts; plain mean where no pixel is above the background). Every map
    is walked in strips of rows (they may be memory-mapped), and the image itself is not
    read again."""
    n = int(max(int(np.asarray(labels[start:start + ROWS]).max(initial=0))
                for start in range(0, labels.shape[0], ROWS)))
    sums = {key: np.zeros(n + 1) for key in ("area", "y", "x", "flux", "light")}
    beliefs = np.zeros((len(classes), n + 1))
    weighted = np.zeros((len(classes), n + 1))
    low = np.full((2, n + 1), np.iinfo(np.int64).max)
    high = np.full((2, n + 1), -1)
    width = labels.shape[1]
    for start in range(0, labels.shape[0], ROWS):
        block = np.asarray(labels[start:start + ROWS])
        flat = block.ravel()
        ys, xs = np.divmod(np.arange(flat.size), width)
        ys = ys + start
        sums["area"] += np.bincount(flat, minlength=n + 1)
        sums["y"] += np.bincount(flat, weights=ys, minlength=n + 1)
        sums["x"] += np.bincount(flat, weights=xs, minlength=n + 1)
        block_flux = np.asarray(flux[start:start + ROWS], dtype=np.float64).ravel()
        light = np.clip(block_flux, 0, None)
        sums["flux"] += np.bincount(flat, weights=block_flux, minlength=n + 1)
        sums["light"] += np.bincount(flat, weights=light, minlength=n + 1)
        for c in range(len(classes)):
            p = np.asarray(probs[c, start:start + ROWS], dtype=np.float64).ravel()
            beliefs[c] += np.bincount(flat, weights=p, minlength=n + 1)
            weighted[c] += np.bincount(flat, weights=p * light, minlength=n + 1)
        inside = flat > 0
        for axis, coordinate in enumerate((ys, xs)):
            np.minimum.at(low[axis], flat[inside], coordinate[inside])
            np.maximum.at(high[axis], flat[inside], coordinate[inside])
    ids = np.arange(1, n + 1)
    area = sums["area"][ids]
    table = Table()
    table["id"] = ids.astype(np.int32)
    table["x"] = sums["x"][ids] / np.maximum(area, 1)
    table["y"] = sums["y"][ids] / np.maximum(area, 1)
    ra, dec = _sky(header, np.asarray(table["x"]), np.asarray(table["y"]))
    table["ra"], table["dec"] = ra, dec
    table["area"] = area.astype(np.int64)
    table["bbox_xmin"], table["bbox_ymin"] = low[1][ids], low[0][ids]
    table["bbox_xmax"], table["bbox_ymax"] = high[1][ids], high[0][ids]
    table["flux"] = sums["flux"][ids]
    light = sums["light"][ids]
    mean_beliefs = np.where(light > 0, weighted[:, ids] / np.where(light > 0, light, 1),
                            beliefs[:, ids] / np.maximum(area, 1))
    table["predicted"] = np.array([classes[1 + int(i)] for i in
                                   mean_beliefs[1:].argmax(0)] if n else [], dtype="U32")
    for c, name in enumerate(classes[1:], start=1):
        table[f"p_{name}"] = mean_beliefs[c]
    return table


def celestial_wcs(header: fits.Header) -> WCS | None:
    """The header's celestial WCS, or None when it has none (or a broken one)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        warnings.simplefilter("ignore", AstropyWarning)
        try:
            wcs = WCS(header).celestial
        except Exception:
            return None
    return wcs if wcs.has_celestial else None


def _sky(header: fits.Header, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ICRS RA and Dec of pixel positions, whatever frame the header's WCS is in (FK5 and
    ICRS differ by some 20 mas: every galcnn table says ICRS, as predict's do)."""
    wcs = celestial_wcs(header)
    if wcs is None or not len(x):
        return np.full(len(x), np.nan), np.full(len(x), np.nan)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            sky = wcs.pixel_to_world(x, y)
            if sky.frame.name != "icrs":
                sky = sky.icrs
            return np.asarray(sky.ra.deg, dtype=float), np.asarray(sky.dec.deg, dtype=float)
    except Exception:  # noqa: BLE001  a celestial WCS astropy cannot turn into a frame
        return np.full(len(x), np.nan), np.full(len(x), np.nan)
