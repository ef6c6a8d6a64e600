"""Tiling: maps independent of the tile size and of where they are held."""

from __future__ import annotations

import os

import numpy as np
from astropy.io import fits

from galcnn.stages.segment import SegmentOptions, segment, tiling



def test_tile_size_does_not_change_the_result(unet, field_file, tmp_path):
    small = segment(unet, [field_file], str(tmp_path / "a"), SegmentOptions(tile=128))
    large = segment(unet, [field_file], str(tmp_path / "b"), SegmentOptions(tile=512))
    a = fits.getdata(small.outputs[0], "PROB")
    b = fits.getdata(large.outputs[0], "PROB")
    assert np.abs(a - b).max() < 1e-4
    np.testing.assert_array_equal(fits.getdata(small.outputs[0], "LABELS"),
                                  fits.getdata(large.outputs[0], "LABELS"))


def test_memory_mapped_scratch_gives_the_same_maps(unet, field_file, tmp_path, monkeypatch):
    reference = segment(unet, [field_file], str(tmp_path / "ram"), SegmentOptions(tile=64))
    monkeypatch.setattr(tiling, "IN_MEMORY_BYTES", 1024)
    mapped = segment(unet, [field_file], str(tmp_path / "mm"), SegmentOptions(tile=64))
    np.testing.assert_array_equal(fits.getdata(reference.outputs[0], "PROB"),
                                  fits.getdata(mapped.outputs[0], "PROB"))
    assert not [n for n in os.listdir(tmp_path / "mm") if n.startswith(".galcnn-scratch")]
