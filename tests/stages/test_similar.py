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
    with pytest.raises(SimilarError, match="not a FITS table; similar searches the table "
                                           "galcnn embed writes"):
        similar(str(tmp_path / "broken.fits"), ["a"], str(tmp_path / "x.csv"))
    predictions = tmp_path / "predictions.csv"  # astropy said "__cinit__() got an unexpected
    predictions.write_text("id,file,p_a\na,a.fits,0.5\n")  # keyword argument 'hdu'"
    with pytest.raises(SimilarError) as raised:
        similar(str(predictions), ["a"], str(tmp_path / "x.csv"))
    assert str(raised.value) == (f"{predictions}: not a FITS table; similar searches the "
                                 "table galcnn embed writes (embeddings.fits)")
    partial = tmp_path / "emb.fits.partial"  # astropy printed its 50-line table of formats
    partial.write_text("id,file,hdu,ra,dec,embedding,status\n")
    with pytest.raises(SimilarError, match="not a FITS table"):
        similar(str(partial), ["a"], str(tmp_path / "x.csv"))


def test_unknown_queries_alone_write_nothing(tmp_path):
    """An unknown id wrote a header-only CSV and said '8 nearest of 0 queries'."""
    table = _table(tmp_path, [[1, 0], [0, 1], [1, 1]])
    out = tmp_path / "near.csv"
    with pytest.raises(SimilarError) as raised:
        similar(table, ["obj9", "nothing"], str(out), k=8)
    assert str(raised.value) == (f"no query is in {table}: obj9, nothing (give an id, a file, "
                                 "or a file's name of an embedded row)")
    assert not out.exists()


def test_relative_paths_resolve_where_embed_ran_and_a_missing_cutout_is_said(tmp_path,
                                                                             monkeypatch):
    """Run from another directory, similar drew a mosaic of empty panels, exit 0."""
    from astropy.io import fits

    monkeypatch.chdir(tmp_path)
    for i in range(3):
        write_fits(tmp_path / "cut" / f"c{i}.fits", noise_image((16, 16), seed=i))
    table = Table({"id": ["a", "b", "c"], "file": ["cut/c0.fits", "cut/c1.fits", "cut/c2.fits"],
                   "embedding": np.eye(3, dtype=np.float32) + 0.1, "status": ["ok"] * 3})
    hdu = fits.table_to_hdu(table)
    hdu.header["BASEDIR"] = str(tmp_path)
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp_path / "emb.fits")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = similar(str(tmp_path / "emb.fits"), ["a"], "near.csv", k=2)
    assert result.missing == [] and result.n_neighbours == 2 and result.n_searched == 3
    (tmp_path / "cut" / "c1.fits").unlink()
    result = similar(str(tmp_path / "emb.fits"), ["a"], "near.csv", k=2)
    assert result.missing == [("cut/c1.fits", f"cutout not found (nor relative to {tmp_path}, "
                                              "where embed ran)")]


def test_the_mosaic_wraps_into_a_grid(tmp_path):
    """-k 1000 drew one strip 19,459 px wide: rows of 10 panels, at most 49 neighbours."""
    from PIL import Image

    table = _table(tmp_path, np.random.default_rng(0).normal(size=(80, 4)))
    result = similar(table, ["obj0"], str(tmp_path / "near.csv"), k=1000)
    assert result.n_neighbours == 79 and len(csv_rows(tmp_path / "near.csv")) == 79
    width, height = Image.open(result.mosaic_path).size
    assert width < 2500 and height > 0.5 * width  # 50 panels in 5 rows of 10, not 1 of 50
