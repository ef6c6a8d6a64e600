"""The object catalogue agrees with the label map."""

from __future__ import annotations


import numpy as np
from astropy.io import fits
from astropy.table import Table

from galcnn.stages.segment import SegmentOptions, segment



def test_catalogue_rows_match_the_label_map(unet, field_file, tmp_path):
    segment(unet, [field_file], str(tmp_path / "seg"), SegmentOptions(threshold=0.3))
    labels = fits.getdata(tmp_path / "seg" / "field.seg.fits", "LABELS")
    table = Table.read(tmp_path / "seg" / "field.cat.csv", format="ascii.csv")
    assert len(table) == labels.max()
    area = np.bincount(labels.ravel())
    for row in table:
        assert row["area"] == area[row["id"]]
        ys, xs = np.nonzero(labels == row["id"])
        assert (row["bbox_xmin"], row["bbox_xmax"]) == (xs.min(), xs.max())
        assert (row["bbox_ymin"], row["bbox_ymax"]) == (ys.min(), ys.max())
        assert abs(row["x"] - xs.mean()) < 1e-6 and 149 < row["ra"] < 151
        beliefs = [row[f"p_{c}"] for c in ("edge_on", "elliptical", "spiral_acw", "spiral_cw",
                                           "other")]
        assert row["predicted"] == ["edge_on", "elliptical", "spiral_acw", "spiral_cw",
                                    "other"][int(np.argmax(beliefs))]


def test_beliefs_are_weighted_by_the_light_of_each_pixel():
    from galcnn.stages.segment.catalogue import catalogue

    labels = np.array([[1, 1, 0, 2]], np.int32)
    flux = np.array([[9.0, 1.0, 0.0, -1.0]], np.float32)  # object 2: no light above sky
    probs = np.zeros((3, 1, 4), np.float32)
    probs[:, 0, 0] = (0.0, 0.9, 0.1)  # the bright pixel says class a
    probs[:, 0, 1] = (0.0, 0.1, 0.9)  # the faint one says b
    probs[:, 0, 3] = (0.2, 0.3, 0.5)
    table = catalogue(labels, probs, flux, ["background", "a", "b"], fits.Header())
    assert list(table["predicted"]) == ["a", "b"]
    np.testing.assert_allclose(table["p_a"], [0.82, 0.3])  # (9 * 0.9 + 1 * 0.1) / 10; mean
    np.testing.assert_allclose(table["flux"], [10.0, -1.0])
