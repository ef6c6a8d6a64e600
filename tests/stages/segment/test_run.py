"""``segment`` over many inputs: odd sizes, cubes, wrong models."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits

from galcnn.data.recipe import Preprocess
from galcnn.stages.prepare import PrepareOptions, prepare
from galcnn.stages.segment import segment
from galcnn.stages.train import TrainOptions, train

from helpers import SAMPLE_DATA, write_fits


def test_tiny_odd_images_and_cubes(unet, tmp_path):
    write_fits(tmp_path / "in" / "tiny.fits", np.random.default_rng(0).normal(size=(7, 10)))
    write_fits(tmp_path / "in" / "cube.fits", np.zeros((2, 20, 20), np.float32))
    result = segment(unet, [str(tmp_path / "in")], str(tmp_path / "seg"))
    assert result.n_images == 1
    assert fits.getdata(tmp_path / "seg" / "tiny.seg.fits", "PROB").shape == (6, 7, 10)
    assert result.failures == [(str(tmp_path / "in" / "cube.fits") + "[0]",
                                "HDU 0 has 2 band(s); the model needs 1")]


def test_segment_refuses_a_classifier(tmp_path):
    from galcnn.stages.segment import SegmentError

    data = str(tmp_path / "prep")
    prepare([os.path.join(SAMPLE_DATA, "simulated")], data,
            options=PrepareOptions(Preprocess(size=(16, 16))), workers=1)
    run = str(tmp_path / "cls")
    train(data, run, TrainOptions(width=4, epochs=1, batch_size=32))
    with pytest.raises(SegmentError, match="a classify model; segment needs a U-Net"):
        segment(run, [data], str(tmp_path / "seg"))
