"""``similar``: nearest rows by cosine distance, queries by id or file, a mosaic."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from galcnn.stages.similar import SimilarError, nearest, similar

from helpers import csv_rows, noise_image, write_fits


def _table(tmp_path, vectors, status=None) -> str:
    paths = [write_fits(tmp_path / f"c{i}.fits", noise_image((16, 16), seed=i))
             for i in range(len(vectors))]
    table = Table({"id": [f"obj{i}" for i in range(len(vectors))], "file": paths,
                   "embedding": np.asarray(vectors, dtype=np.float32),
                   "status": status or ["ok"] * len(vectors)})
    out = str(tmp_path / "emb.fits")
    table.write(out)
    return out


def test_nearest_is_by_angle_not_length():
    vectors = np.array([[1.0, 0], [10.0, 1], [0, 1], [-1, 0]])
    chosen, distances = nearest(vectors, np.array([2.0, 0]), 3)
    assert chosen.tolist() == [0, 1, 2]
    np.testing.assert_allclose(distances, [0, 1 - 10 / np.hypot(10, 1), 1])


def test_neighbours_of_each_query_leave_the_query_out(tmp_path):
    table = _table(tmp_path, [[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [1, 1]],
                   status=["ok", "ok", "ok", "ok", "error: broken"])
    out = str(tmp_path / "near.csv")
    result = similar(table, ["obj0", "c2.fits", "missing"], out, k=2)
    rows = csv_rows(out)
    assert [(r["query"], r["rank"], r["id"]) for r in rows] == [
        ("obj0", "1", "obj1"), ("obj0", "2", "obj3"), ("c2.fits", "1", "obj3"),
        ("c2.fits", "2", "obj1")]
    assert float(rows[0]["distance"]) == pytest.approx(1 - 0.9 / np.hypot(0.9, 0.1), abs=1e-6)
    assert result.failures[0][0] == "missing" and "not in" in result.failures[0][1]
    with open(result.mosaic_path, "rb") as handle:
        assert handle.read(4) == b"\x89PNG"


def test_a_table_without_embeddings_is_refused(tmp_path):
    plain = str(tmp_path / "plain.fits")
    Table({"id": ["a"], "p_a": [0.5]}).write(plain)
    with pytest.raises(SimilarError, match="not an embedding table"):
        similar(plain, ["a"], str(tmp_path / "x.csv"))
    (tmp_path / "broken.fits").write_text("no")
    with pytest.raises(SimilarError, match="not a readable FITS table"):
        similar(str(tmp_path / "broken.fits"), ["a"], str(tmp_path / "x.csv"))
