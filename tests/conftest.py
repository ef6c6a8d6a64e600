"""Shared fixtures: tiny FITS files written with astropy, and the shared survey data."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits

SHARED_DATA = os.environ.get(
    "GALCNN_SHARED_DATA",
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
SAMPLE_DATA = os.path.join(os.path.dirname(__file__), "..", "sample_data")


def write_fits(path, data=None, *, header=None, hdus=None):
    """Write a primary-HDU image (or a given HDU list) and return the path as str."""
    path = str(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if hdus is None:
        hdus = [fits.PrimaryHDU(data, header=header)]
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def noise_image(shape=(32, 32), seed=0, bands=None):
    rng = np.random.default_rng(seed)
    full = shape if bands is None else (bands, *shape)
    image = rng.normal(0.0, 1.0, full).astype(np.float32)
    image[..., shape[0] // 2 - 2:shape[0] // 2 + 2, shape[1] // 2 - 2:shape[1] // 2 + 2] += 20
    return image


@pytest.fixture
def shared_data():
    if not os.path.isdir(SHARED_DATA):
        pytest.skip("shared survey data not present")
    return os.path.abspath(SHARED_DATA)


@pytest.fixture
def class_dirs(tmp_path):
    """Four cutouts in each of two class folders: tmp/cutouts/{a,b}/x*.fits."""
    root = tmp_path / "cutouts"
    for label, offset in (("a", 0), ("b", 100)):
        for i in range(4):
            write_fits(root / label / f"x{i}.fits", noise_image(seed=offset + i))
    return root
