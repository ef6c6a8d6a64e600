"""``explain``: maps on the input's pixel grid with its WCS, an index row per input."""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits

from galcnn.stages.explain import ExplainError, ExplainOptions, explain

from helpers import csv_rows, noise_image, write_fits

WCS_CARDS = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.1, "CRVAL2": 2.2,
             "CRPIX1": 20.5, "CRPIX2": 20.5, "CDELT1": -0.0004, "CDELT2": 0.0004}


def test_maps_are_written_on_the_input_grid_with_its_wcs(classifier, tmp_path):
    header = fits.Header(WCS_CARDS)
    write_fits(tmp_path / "in" / "sky.fits", noise_image((40, 40), seed=3), header=header)
    out = str(tmp_path / "explained")
    result = explain(classifier, [str(tmp_path / "in")], out, ExplainOptions(steps=4))
    assert (result.n_ok, result.n_failed) == (1, 0)
    (row,) = csv_rows(os.path.join(out, "index.csv"))
    assert row["status"] == "ok" and row["class"] == row["predicted"]
    assert os.path.exists(os.path.join(out, row["png"]))
    with open(os.path.join(out, row["png"]), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    with fits.open(os.path.join(out, row["fits"])) as hdus:
        assert [h.name for h in hdus] == ["PRIMARY", "GRADCAM", "INTGRAD"]
        primary, cam = hdus[0].header, hdus["GRADCAM"]
        assert primary["CLASS"] == row["class"] and primary["CRVAL1"] == 150.1
        classes = primary["CLASSES"].split(",")
        beliefs = [primary[f"P{i}"] for i in range(len(classes))]
        assert abs(sum(beliefs) - 1) < 1e-5
        assert float(row["belief"]) == pytest.approx(beliefs[classes.index(row["class"])],
                                                     rel=1e-5)
        assert cam.data.shape == (40, 40) and hdus["INTGRAD"].data.shape == (40, 40)
        assert (cam.header["CRVAL1"], cam.header["CTYPE2"]) == (150.1, "DEC--TAN")
        # the model reads the central 32 x 32 pixels: outside them there is no map
        assert np.isnan(cam.data[:4]).all() and np.isfinite(cam.data[4:36, 4:36]).all()
        assert (cam.data[4:36, 4:36] >= 0).all()


def test_a_chosen_class_and_bad_files_each_get_their_row(classifier, cutouts, tmp_path):
    (cutouts / "empty.fits").write_bytes(b"")
    write_fits(cutouts / "nan.fits", np.full((32, 32), np.nan, dtype=np.float32))
    out = str(tmp_path / "explained")
    result = explain(classifier, [str(cutouts)], out,
                     ExplainOptions(target="spiral_cw", steps=2, png=False))
    assert (result.n_ok, result.n_failed) == (12, 2)
    rows = {os.path.basename(r["file"]): r for r in csv_rows(os.path.join(out, "index.csv"))}
    assert rows["empty.fits"]["status"].startswith("error: ") and rows["empty.fits"]["fits"] == ""
    assert "NaN" in rows["nan.fits"]["status"]
    good = [r for r in rows.values() if r["status"] == "ok"]
    assert {r["class"] for r in good} == {"spiral_cw"} and all(r["png"] == "" for r in good)
    assert len({r["fits"] for r in good}) == 12
    assert sorted(os.listdir(out)) == sorted([r["fits"] for r in good] + ["index.csv"])


def test_what_cannot_be_explained_is_refused_in_one_line(classifier, unet, cutouts, tmp_path):
    out = str(tmp_path / "explained")
    with pytest.raises(ExplainError, match="unknown class 'bar' to explain; the model's classes "):
        explain(classifier, [str(cutouts)], out, ExplainOptions(target="bar"))
    with pytest.raises(ExplainError, match="a segment model; explain needs a classifier"):
        explain(unet, [str(cutouts)], out)
    os.makedirs(out)
    with pytest.raises(ExplainError, match="already exists; use --overwrite"):
        explain(classifier, [str(cutouts)], out)
    assert os.listdir(out) == []
