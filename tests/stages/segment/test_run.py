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

from helpers import SAMPLE_DATA, csv_rows, write_fits


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


@pytest.mark.slow
def test_an_output_missing_a_product_is_redone_and_scaled_integers_are_read(unet, tmp_path):
    from galcnn.stages.segment import SegmentOptions

    rng = np.random.default_rng(0)
    counts = (rng.normal(1000, 30, (64, 64))).astype(np.int64)
    unsigned = fits.PrimaryHDU((counts + 30000).astype(np.uint16))  # BZERO 32768 on disk
    unsigned.writeto(tmp_path / "u16.fits")
    scaled = fits.PrimaryHDU((counts - 1000).astype(np.int16))
    scaled.header.update(BSCALE=0.5, BZERO=10.0, BLANK=-32768)
    scaled.writeto(tmp_path / "i16.fits")
    assert fits.getheader(tmp_path / "u16.fits")["BZERO"] == 32768
    out = tmp_path / "out"
    first = segment(unet, [str(tmp_path / "u16.fits"), str(tmp_path / "i16.fits")], str(out),
                    SegmentOptions(overlay=True))
    assert first.n_images == 2 and first.failures == []
    os.remove(out / "u16.cat.csv")  # as if killed after the maps (an older galcnn's order)
    again = segment(unet, [str(tmp_path / "u16.fits"), str(tmp_path / "i16.fits")], str(out),
                    SegmentOptions(overlay=True))
    assert (again.n_images, again.n_skipped) == (1, 1)
    assert (out / "u16.cat.csv").exists() and (out / "u16.png").exists()


def test_constant_and_all_bad_images_give_no_objects_and_a_warning(unet, tmp_path):
    write_fits(tmp_path / "zeros.fits", np.zeros((64, 64), dtype=np.float32))
    write_fits(tmp_path / "nan.fits", np.full((64, 64), np.nan, dtype=np.float32))
    out = tmp_path / "out"
    result = segment(unet, [str(tmp_path / "zeros.fits"), str(tmp_path / "nan.fits")], str(out))
    assert result.n_objects == 0
    assert sorted((os.path.basename(p), w) for p, w in result.warnings) == [
        ("nan.fits[0]", "every pixel is NaN, inf or BLANK"),
        ("zeros.fits[0]", "constant image (every usable pixel is 0)")]
    log = {os.path.basename(r["file"]): r for r in csv_rows(out / "segment.csv")}
    assert log["zeros.fits"]["status"].startswith("warning: constant image")
    assert fits.getdata(out / "zeros.seg.fits", "LABELS").max() == 0
