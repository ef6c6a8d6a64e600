"""The ``.seg.fits`` products: header, WCS, extensions."""

from __future__ import annotations

import os

import numpy as np
from astropy.io import fits

from galcnn.stages.segment import SegmentOptions, segment

from helpers import write_fits

def test_segment_output_keeps_header_and_wcs(unet, field_file, tmp_path):
    result = segment(unet, [field_file], str(tmp_path / "seg"), SegmentOptions(tile=64))
    assert result.n_images == 1 and result.failures == []
    out = str(tmp_path / "seg" / "field.seg.fits")
    with fits.open(out) as hdul, fits.open(field_file) as original:
        assert [h.name for h in hdul] == ["PRIMARY", "PROB", "MASK", "LABELS", "COVERAGE"]
        head = hdul[0].header
        assert head["OBJECT"] == "galcnn simulated field" and head["CRVAL1"] == 150.1
        assert head["TILE"] == 64 and head["HALO"] >= head["RECEPT"] and len(head["MODELSHA"]) == 16
        prob = hdul["PROB"].data
        assert prob.shape == (6, 200, 150) and hdul["PROB"].header["CLASS5"] == "other"
        np.testing.assert_allclose(prob.sum(0), 1.0, atol=1e-4)
        assert hdul["LABELS"].data.dtype.kind == "i" and hdul["LABELS"].data.shape == (200, 150)
        assert hdul["COVERAGE"].data.min() >= 1
        assert hdul["MASK"].header["CTYPE1"] == original[0].header["CTYPE1"]
        np.testing.assert_array_equal(original[0].data, fits.getdata(field_file))


def test_keywords_describe_this_output(unet, tmp_path):
    from galcnn.checkpoint import load_model

    image = np.random.default_rng(0).normal(size=(40, 50)).astype(np.float32)
    header = fits.Header({"CLASSES": "star,galaxy", "OBJECT": "kept"})
    source = write_fits(tmp_path / "deep" / "folder" / "in.fits", image, header=header)
    result = segment(unet, [source], str(tmp_path / "seg"))
    primary = fits.getheader(result.outputs[0])
    assert primary["CLASSES"] == ",".join(load_model(unet).card.classes)
    assert primary["SRCFILE"] == os.path.abspath(source)
    assert primary["MODEL"] == os.path.abspath(unet) and primary["OBJECT"] == "kept"
