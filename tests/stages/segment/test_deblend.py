"""Touching objects split on their flux; numbering in raster order again."""

from __future__ import annotations

import numpy as np

from galcnn.stages.segment.deblend import deblend_objects, renumber_in_raster_order


def _blobs(centres, shape=(60, 90), sigma=4.0, noise=0.0, seed=0):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    flux = sum(amplitude * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma ** 2))
               for y, x, amplitude in centres)
    return flux + np.random.default_rng(seed).normal(0, noise, shape)


def test_two_touching_galaxies_become_two_objects_and_one_stays_one():
    flux = _blobs([(30, 30, 50.0), (30, 50, 30.0), (30, 78, 40.0)], noise=0.5)
    labels = np.zeros(flux.shape, np.int32)
    labels[18:43, 18:63] = 1  # one footprint over the touching pair
    labels[20:41, 70:88] = 2  # a lone galaxy
    n = deblend_objects(labels, flux, min_area=5, contrast=0.005)
    assert n == 3
    first, second, lone = labels[30, 30], labels[30, 50], labels[30, 78]
    assert len({first, second, lone}) == 3 and lone == 2 and first == 1
    assert (labels[18:43, 18:63] > 0).all() and set(np.unique(labels[18:43, 18:63])) == {1, 3}
    boundary = np.flatnonzero(labels[30, 18:63] != first)[0] + 18
    assert 38 <= boundary <= 43  # at the saddle between the peaks (nearer the fainter one)
    assert renumber_in_raster_order(labels, n) == 3
    assert (labels[18, 18], labels[30, 50], labels[20, 70]) == (1, 2, 3)  # row 18 meets both


def test_contrast_one_never_splits_and_noise_alone_does_not_split():
    flux = _blobs([(30, 30, 50.0), (30, 50, 30.0)])
    labels = np.zeros(flux.shape, np.int32)
    labels[18:43, 18:63] = 1
    assert deblend_objects(labels.copy(), flux, contrast=1.0) == 1
    smooth = _blobs([(30, 40, 50.0)], sigma=8.0, noise=1.0, seed=3)
    assert deblend_objects(labels, smooth, contrast=0.005) == 1


def test_renumbering_follows_the_first_pixel_and_drops_unused_numbers():
    labels = np.array([[0, 7, 0, 0],
                       [3, 0, 0, 9],
                       [3, 3, 0, 9]], np.int32)
    assert renumber_in_raster_order(labels, 9, rows=1) == 3
    np.testing.assert_array_equal(labels, [[0, 1, 0, 0], [2, 0, 0, 3], [2, 2, 0, 3]])


def test_works_on_memory_mapped_maps(tmp_path):
    flux = _blobs([(30, 30, 50.0), (30, 50, 30.0)])
    labels = np.memmap(tmp_path / "labels", np.int32, "w+", shape=flux.shape)
    labels[18:43, 18:63] = 1
    assert deblend_objects(labels, np.memmap.__new__(np.memmap, tmp_path / "f", np.float32,
                                                     "w+", shape=flux.shape), contrast=0.005) == 1
    assert deblend_objects(labels, flux.astype(np.float32), contrast=0.005) == 2


def test_a_footprint_far_larger_than_a_galaxy_is_left_whole():
    flux = _blobs([(30, 30, 50.0), (30, 50, 30.0)])
    labels = np.zeros(flux.shape, np.int32)
    labels[18:43, 18:63] = 1  # 1125 pixels
    assert deblend_objects(labels, flux, contrast=0.005, max_area=1000) == 1
    assert (labels[18:43, 18:63] == 1).all()
