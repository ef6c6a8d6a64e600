"""Pixel masks for training a U-Net: derived, read from an HDU, and turned into targets."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from galcnn.data.masks import (MASK_CENTRAL, MASK_OTHER, cutout_mask, derive_mask, drop_small,
                               mask_to_target, parse_mask_source, segmentation_classes)
from galcnn.data.simulate import simulate_cutout

from helpers import write_fits


def test_derive_mask_finds_the_central_object_and_neighbours():
    cutout = simulate_cutout("elliptical", size=64, snr=40, n_neighbours=2,
                             rng=np.random.default_rng(1))
    mask = derive_mask(cutout.image)
    assert mask[32, 32] == MASK_CENTRAL
    exact = cutout.mask == MASK_CENTRAL
    derived = mask == MASK_CENTRAL
    assert (exact & derived).sum() / (exact | derived).sum() > 0.6
    if (cutout.mask == MASK_OTHER).any():
        assert (mask == MASK_OTHER).any()
    assert derive_mask(np.random.default_rng(0).normal(size=(1, 48, 48))).max() <= MASK_OTHER


def test_pure_noise_has_no_central_object():
    noise = np.random.default_rng(5).normal(size=(1, 64, 64)).astype(np.float32)
    assert (derive_mask(noise, nsigma=4.0) == MASK_CENTRAL).sum() == 0


def test_mask_to_target_and_drop_small():
    masks = np.array([[[0, 1, 2]], [[1, 0, 2]]], dtype=np.uint8)
    target = mask_to_target(masks, np.array([0, 2]), 3)
    assert target.tolist() == [[[0, 1, 4]], [[3, 0, 4]]]
    assert segmentation_classes(["a", "b"]) == ["background", "a", "b", "other"]
    labels = np.array([[1, 1, 0, 2], [1, 0, 0, 0], [0, 0, 3, 3]], dtype=np.int32)
    assert drop_small(labels, 2).tolist() == [[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 2, 2]]


def test_mask_rules_and_one_line_problems(tmp_path):
    cutout = simulate_cutout("elliptical", size=40, rng=np.random.default_rng(2))
    path = write_fits(tmp_path / "x.fits", hdus=[fits.PrimaryHDU(cutout.image[0]),
                                                 fits.ImageHDU(cutout.mask, name="MASK")])
    given = cutout_mask(path, cutout.image, "hdu:MASK", (32, 32))
    np.testing.assert_array_equal(given, np.minimum(cutout.mask, 2)[4:36, 4:36])
    assert cutout_mask(path, cutout.image, "auto", (32, 32))[16, 16] == MASK_CENTRAL
    with pytest.raises(ValueError, match="has no mask HDU 'OTHER'"):
        cutout_mask(path, cutout.image, "hdu:OTHER", (32, 32))
    assert parse_mask_source(" hdu:MASK ") == "hdu:MASK" and parse_mask_source(None) == "none"
    with pytest.raises(ValueError, match="none, auto or hdu:NAME"):
        parse_mask_source("magic")
