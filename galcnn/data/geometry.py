"""Bring images to one size: centre crop/pad (pixel scale kept) or resize (field of view kept).

Rotation by an arbitrary angle is done in the same single resampling, zooming in just enough
that no corner of the output falls outside the input (no empty corners).
"""

from __future__ import annotations

import math

import numpy as np
from skimage.filters import gaussian
from skimage.transform import ProjectiveTransform, resize, warp

from galcnn.choices import FIT_MODES, unknown_choice

__all__ = ["fit_to_size", "fit_mask_to_size", "rotate_to_size"]


def _check(image: np.ndarray, fit: str) -> None:
    if image.ndim != 3:
        raise ValueError(f"expected a (bands, y, x) array, got shape {image.shape}")
    if fit not in FIT_MODES:
        raise ValueError(unknown_choice("fit", fit, FIT_MODES))


def _band_values(image: np.ndarray, pad_values) -> np.ndarray:
    if pad_values is None:
        return np.zeros(image.shape[0], dtype=image.dtype)
    return np.broadcast_to(np.asarray(pad_values, dtype=image.dtype), (image.shape[0],))


def fit_to_size(image: np.ndarray, size: tuple[int, int], *, fit: str = "crop",
                pad_values=None) -> np.ndarray:
    """Centre-crop or pad (``fit="crop"``), or resample (``fit="resize"``) to ``size=(ny, nx)``.

    Padding uses ``pad_values`` per band (default 0). A centre crop takes the pixels from
    ``(n - size) // 2``, so an odd excess drops one more pixel at the top/right.
    """
    _check(image, fit)
    ny, nx = size
    bands, height, width = image.shape
    if (height, width) == (ny, nx):
        return image.copy()
    if fit == "resize":
        down = height > ny or width > nx
        return resize(image, (bands, ny, nx), order=1, mode="edge", anti_aliasing=down,
                      preserve_range=True).astype(image.dtype)
    out = np.empty((bands, ny, nx), dtype=image.dtype)
    out[:] = _band_values(image, pad_values)[:, None, None]
    src_y0, dst_y0, span_y = _centre_span(height, ny)
    src_x0, dst_x0, span_x = _centre_span(width, nx)
    out[:, dst_y0:dst_y0 + span_y, dst_x0:dst_x0 + span_x] = \
        image[:, src_y0:src_y0 + span_y, src_x0:src_x0 + span_x]
    return out


def fit_mask_to_size(mask: np.ndarray, size: tuple[int, int], *, fit: str = "crop") -> np.ndarray:
    """The geometry of :func:`fit_to_size` for a ``(y, x)`` integer mask: padding is background
    (0) and resizing takes the nearest pixel, so no mask value is invented."""
    if fit == "resize" and mask.shape != tuple(size):
        return resize(mask, size, order=0, mode="edge", anti_aliasing=False,
                      preserve_range=True).astype(mask.dtype)
    return fit_to_size(mask[None], size, fit=fit, pad_values=0)[0]


def _centre_span(source: int, target: int) -> tuple[int, int, int]:
    if source >= target:
        return (source - target) // 2, 0, target
    return 0, (target - source) // 2, source


def rotate_to_size(image: np.ndarray, size: tuple[int, int], angle_deg: float, *,
                   fit: str = "crop") -> tuple[np.ndarray, float]:
    """Rotate about the centre and bring to ``size`` in one resampling, without empty corners.

    Returns the image and the zoom factor (>= 1) that was needed to keep every output pixel
    inside the input; 1 means the input was large enough.
    """
    _check(image, fit)
    ny, nx = size
    bands, height, width = image.shape
    scale_y, scale_x = (height / ny, width / nx) if fit == "resize" else (1.0, 1.0)
    theta = math.radians(angle_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    # output pixel offsets (x, y) from the centre -> input offsets, before zoom
    linear = np.array([[scale_x * cos, -scale_x * sin], [scale_y * sin, scale_y * cos]])
    half_out = np.array([(nx - 1) / 2.0, (ny - 1) / 2.0])
    half_in = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    corners = np.array([[sx * half_out[0], sy * half_out[1]] for sx in (-1, 1) for sy in (-1, 1)])
    reach = np.abs(corners @ linear.T).max(axis=0)
    zoom = float(max(1.0, *(reach / np.maximum(half_in, 1e-9))))
    linear = linear / zoom
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = half_in - linear @ half_out
    transform = ProjectiveTransform(matrix=matrix)
    step = min(scale_x, scale_y) / zoom
    out = np.empty((bands, ny, nx), dtype=image.dtype)
    for index, band in enumerate(image):
        band = band.astype(np.float64)
        if step > 1:
            band = gaussian(band, sigma=(step - 1) / 2.0, mode="nearest", preserve_range=True)
        out[index] = warp(band, transform, output_shape=(ny, nx), order=1, mode="edge",
                          preserve_range=True)
    return out, zoom
