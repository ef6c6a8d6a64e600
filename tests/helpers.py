"""Small helpers the tests share: tiny FITS files written with astropy, paths, tiny runs."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
from astropy.io import fits

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_DATA = os.environ.get("GALCNN_SHARED_DATA",
                             os.path.join(HERE, "..", "..", "shared", "data"))
SAMPLE_DATA = os.path.join(HERE, "..", "sample_data")


def write_fits(path, data=None, *, header=None, hdus=None) -> str:
    """Write a primary-HDU image (or a given HDU list) and return the path as str."""
    path = str(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if hdus is None:
        hdus = [fits.PrimaryHDU(data, header=header)]
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def csv_rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def manifest_rows(prepared) -> list[dict]:
    """A prepared dataset's manifest, as text."""
    return csv_rows(os.path.join(prepared, "manifest.csv"))


def metadata(prepared) -> dict:
    with open(os.path.join(prepared, "metadata.json")) as handle:
        return json.load(handle)


def noise_image(shape=(32, 32), seed=0, bands=None) -> np.ndarray:
    """Unit Gaussian noise with a bright 4x4 square in the middle."""
    rng = np.random.default_rng(seed)
    full = shape if bands is None else (bands, *shape)
    image = rng.normal(0.0, 1.0, full).astype(np.float32)
    image[..., shape[0] // 2 - 2:shape[0] // 2 + 2, shape[1] // 2 - 2:shape[1] // 2 + 2] += 20
    return image


def tiny(**changes):
    """Training options that run in about a second on the 120 simulated cutouts at 32 px."""
    from galcnn.stages.train import TrainOptions

    return TrainOptions(**{"width": 8, "batch_size": 16, "epochs": 2, "warmup_epochs": 0.5,
                           **changes})
