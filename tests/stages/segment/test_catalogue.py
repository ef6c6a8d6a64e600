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
