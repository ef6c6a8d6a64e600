"""Training masks for the U-Net: derived from a cutout and its label, or read from the file.

A cutout mask holds 0 for background, 1 for the central object (which takes the cutout's
class) and 2 for other objects in the cutout, the convention of :mod:`galcnn.data.simulate`.
:func:`segmentation_classes` and :func:`mask_to_target` turn it into per-pixel class indices.
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy.stats import sigma_clipped_stats
from skimage import measure

from galcnn.data.geometry import fit_mask_to_size

__all__ = ["MASK_BACKGROUND", "MASK_CENTRAL", "MASK_OTHER", "derive_mask", "cutout_mask",
           "segmentation_classes", "mask_to_target", "parse_mask_source", "read_mask_hdu",
           "drop_small", "detect"]

MASK_BACKGROUND, MASK_CENTRAL, MASK_OTHER = 0, 1, 2
BACKGROUND, OTHER = "background", "other"


def parse_mask_source(value: str | None) -> str:
    """``none``, ``auto`` or ``hdu:NAME`` (an extension of each cutout holding its mask)."""
    text = (value or "none").strip()
    if text in ("none", "auto"):
        return text
    if text.lower().startswith("hdu:") and text[4:].strip():
        return "hdu:" + text[4:].strip()
    raise ValueError(f"masks must be none, auto or hdu:NAME (e.g. hdu:MASK), got {value!r}")


def read_mask_hdu(path: str, hdu: str, shape: tuple[int, int]) -> np.ndarray:
    """A given mask from extension ``hdu`` of ``path``: 0 background, 1 the central object,
    any larger value another object. Raises ValueError with a message for the user."""
    from astropy.io import fits

    name: str | int = int(hdu) if hdu.isdigit() else hdu
    try:
        with fits.open(path) as hdul:
            data = hdul[name].data
    except KeyError:
        raise ValueError(f"has no mask HDU {hdu!r}") from None
    except (OSError, TypeError, ValueError) as exc:
        raise ValueError(f"mask HDU {hdu!r} could not be read ({exc})") from None
    if data is None or data.ndim != 2:
        raise ValueError(f"mask HDU {hdu!r} is not a 2-D image")
    if data.shape != tuple(shape):
        raise ValueError(f"mask HDU {hdu!r} has shape {data.shape}, the image {tuple(shape)}")
    data = np.asarray(data)
    if not np.all(np.isfinite(data)) or data.min() < 0:
        raise ValueError(f"mask HDU {hdu!r} holds negative or non-finite values")
    return np.minimum(data, MASK_OTHER).astype(np.uint8)


def cutout_mask(path: str, data: np.ndarray, rule: str, size: tuple[int, int], *,
                fit: str = "crop", nsigma: float = 2.0) -> np.ndarray:
    """The 0/1/2 mask of one cutout by ``rule`` (``auto`` or ``hdu:NAME``, see
    :func:`parse_mask_source`), brought to ``size`` with the image's geometry.

    Raises ValueError (a one-line problem with this file's mask)."""
    if rule == "auto":
        raw = derive_mask(data, nsigma=nsigma)
    else:
        raw = read_mask_hdu(path, rule[4:], data.shape[1:])
    return fit_mask_to_size(raw, size, fit=fit)


def detect(data: np.ndarray, *, nsigma: float = 2.0, min_pixels: int = 5) -> np.ndarray:
    """Classical detection: int32 map of connected footprints above ``nsigma`` noise.

    Background and noise come from sigma-clipped statistics of the band-mean image; pixels
    ``nsigma`` above the background after a 3x3 mean (which suppresses single-pixel noise
    peaks) are grouped into 8-connected footprints of at least ``min_pixels`` pixels.
    """
    image = np.asarray(data, dtype=np.float32)
    image = image.mean(axis=0) if image.ndim == 3 else image
    finite = np.isfinite(image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, median, noise = sigma_clipped_stats(image[finite], sigma=3.0, maxiters=5,
                                               stdfunc="mad_std")
    filled = np.where(finite, image, median)
    smooth = _box3(filled - median)
    noise_smooth = (noise or 1.0) / 3.0  # a 3x3 mean of white noise has a third the sigma
    detected = smooth > nsigma * max(noise_smooth, 1e-12)
    return drop_small(measure.label(detected, connectivity=2).astype(np.int32), min_pixels)


def derive_mask(data: np.ndarray, *, nsigma: float = 2.0, min_pixels: int = 5,
                central_radius: float = 0.1) -> np.ndarray:
    """A 0/1/2 mask from the image alone, as a detection pipeline would draw it.

    Footprints come from :func:`detect`; the one that reaches nearest to the centre (within
    ``central_radius`` of the cutout's side) is the central object; all others are "other".
    """
    labels = detect(data, nsigma=nsigma, min_pixels=min_pixels)
    mask = np.where(labels > 0, MASK_OTHER, MASK_BACKGROUND).astype(np.uint8)
    if labels.max() == 0:
        return mask
    ny, nx = labels.shape
    yy, xx = np.nonzero(labels)
    distance = np.hypot(yy - (ny - 1) / 2.0, xx - (nx - 1) / 2.0)
    nearest = int(np.argmin(distance))
    if distance[nearest] <= max(2.0, central_radius * min(ny, nx)):
        mask[labels == labels[yy[nearest], xx[nearest]]] = MASK_CENTRAL
    return mask


def drop_small(labels: np.ndarray, min_area: int) -> np.ndarray:
    """Remove labelled objects of fewer than ``min_area`` pixels and number the rest 1..n."""
    if labels.max() == 0 or min_area <= 1:
        return labels
    area = np.bincount(labels.ravel())
    keep = area >= min_area
    keep[0] = False
    new_ids = np.zeros(len(area), dtype=labels.dtype)
    new_ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=labels.dtype)
    return new_ids[labels]


def _box3(image: np.ndarray) -> np.ndarray:
    padded = np.pad(image, 1, mode="edge")
    out = np.zeros_like(image)
    for dy in range(3):
        for dx in range(3):
            out += padded[dy:dy + image.shape[0], dx:dx + image.shape[1]]
    return out / 9.0


def segmentation_classes(classes: list[str]) -> list[str]:
    """Pixel classes of a U-Net trained on cutouts of ``classes``: background, each cutout
    class (or ``object`` for unlabelled cutouts), and ``other`` for neighbouring objects."""
    return [BACKGROUND, *(classes or ["object"]), OTHER]


def mask_to_target(masks: np.ndarray, label_indices: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-pixel class indices (``int64``) from 0/1/2 masks and the cutouts' label indices."""
    masks = np.asarray(masks)
    central = 1 + np.maximum(np.asarray(label_indices, dtype=np.int64), 0)
    target = np.zeros(masks.shape, dtype=np.int64)
    target[masks == MASK_CENTRAL] = np.broadcast_to(
        central.reshape(-1, *([1] * (masks.ndim - 1))), masks.shape)[masks == MASK_CENTRAL]
    target[masks == MASK_OTHER] = 1 + max(n_classes, 1)
    return target
