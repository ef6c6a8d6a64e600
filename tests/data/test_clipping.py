"""The vectorised sigma-clipped statistics give astropy's numbers, bit for bit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.stats import sigma_clipped_stats

from galcnn.data.clipping import clipped_median_and_std
from galcnn.data.stretch import background_and_noise


def _astropy(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, median, std = sigma_clipped_stats(rows, sigma=3.0, maxiters=5, stdfunc="mad_std",
                                             axis=1)
    return np.asarray(median, np.float32), np.asarray(std, np.float32)


def _rows(kind: str, n: int, rng) -> np.ndarray:
    if kind == "normal":
        return rng.normal(size=(12, n)).astype(np.float32)
    if kind == "sources":
        rows = rng.normal(size=(12, n)).astype(np.float32)
        rows[:, : n // 5] += 40
        return rows
    if kind == "ties":
        return rng.integers(0, 8, size=(12, n)).astype(np.float32)
    if kind == "uint8":
        return rng.integers(0, 256, size=(12, n)).astype(np.float32)
    if kind == "holes":
        rows = rng.normal(size=(12, n)).astype(np.float32)
        rows[rng.random(rows.shape) < 0.3] = np.nan
        rows[0] = np.nan
        rows[1, 1:] = np.nan
        return rows
    if kind == "infinities":
        rows = rng.normal(size=(12, n)).astype(np.float32)
        rows[rng.random(rows.shape) < 0.05] = np.inf
        rows[rng.random(rows.shape) < 0.05] = -np.inf
        rows[2] = np.inf
        return rows
    if kind == "signed zeros":
        rows = np.where(rng.random((12, n)) < 0.5, np.float32(-0.0), np.float32(0.0))
        rows[:, ::3] = rng.normal(size=rows[:, ::3].shape)
        return rows.astype(np.float32)
    if kind == "heavy tails":
        return rng.standard_cauchy(size=(12, n)).astype(np.float32)
    if kind == "constant":
        return np.full((3, n), 7.0, np.float32)
    return (rng.normal(size=(12, n)) * 1e-3 + 1e4).astype(np.float32)  # large offset


@pytest.mark.parametrize("n", [5, 17, 599, 600, 4096])
@pytest.mark.parametrize("kind", ["normal", "sources", "ties", "uint8", "holes", "infinities",
                                  "signed zeros", "heavy tails", "constant", "offset"])
def test_bit_for_bit_astropy(kind, n):
    rows = _rows(kind, n, np.random.default_rng(n))
    expected_median, expected_std = _astropy(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median, std = clipped_median_and_std(rows)
    np.testing.assert_array_equal(median, expected_median)
    np.testing.assert_array_equal(std, expected_std)


def test_images_of_mixed_sizes_are_measured_as_if_alone():
    rng = np.random.default_rng(3)
    images = [rng.normal(5, 2, size=(3, 32, 32)).astype(np.float32),
              rng.normal(size=(1, 20, 30)).astype(np.float32),
              rng.normal(9, 1, size=(3, 32, 32)).astype(np.float32)]
    together = background_and_noise(images)
    for image, (median, noise) in zip(images, together):
        [(alone_median, alone_noise)] = background_and_noise([image])
        np.testing.assert_array_equal(median, alone_median)
        np.testing.assert_array_equal(noise, alone_noise)
        expected_median, expected_std = _astropy(image.reshape(len(image), -1))
        np.testing.assert_array_equal(median, expected_median.astype(np.float64))
        np.testing.assert_array_equal(noise, expected_std.astype(np.float64))
