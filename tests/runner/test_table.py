"""Tables declared once: CSV cells, resuming a partial table, FITS tables readers trust."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from galcnn.data.fitsheader import from_fits_text
from galcnn.data.inputs import canonical_key
from galcnn.runner.model import RunError
from galcnn.runner.table import Column, TableSink, count_rows, write_fits_table

from helpers import fitsverify

COLUMNS = [Column("id"), Column("file"), Column("hdu", "int"),
           Column("ra", "float", "deg", ".7f"), Column("p_a", "float", "", ".6f"),
           Column("v", "vector"), Column("status")]
IDENTITY = {"model_sha256": "ab" * 32}


def test_cells_say_missing_one_way():
    ra, p, v = COLUMNS[3], COLUMNS[4], COLUMNS[5]
    assert (ra.cell(10.5), ra.cell(float("nan")), ra.cell(None)) == ("10.5000000", "", "")
    assert p.cell(np.float32(0.25)) == "0.250000" and COLUMNS[2].cell(3) == "3"
    vector = np.array([0.1, 1 / 3], np.float32)
    assert np.array_equal(np.array(v.cell(vector).split(), np.float32), vector)  # exact


def _sink(tmp_path, name="t.csv", fmt="csv", meta=()):
    return TableSink(str(tmp_path / name), COLUMNS, fmt=fmt, identity=IDENTITY, meta=meta)


def test_a_resumed_table_cuts_a_torn_row_and_checks_its_columns(tmp_path):
    sink = _sink(tmp_path)
    sink.open(resume=False, overwrite=False)
    sink.add({"id": "x", "file": "x.fits", "hdu": 0, "status": "ok"})
    sink.flush()
    sink.close()
    with open(sink.partial, "a") as handle:
        handle.write("y,y.fits,0,")  # a kill mid-row
    again = _sink(tmp_path)
    assert again.open(resume=True, overwrite=False) == {os.path.realpath("x.fits")}
    again.close()
    assert open(sink.partial, "rb").read().endswith(b"ok\r\n")  # the torn row is gone
    other = TableSink(sink.out_path, COLUMNS[:-1], fmt="csv", identity=IDENTITY)
    with pytest.raises(RunError, match="written by another model or galcnn version"):
        other.open(resume=True, overwrite=False)
    with pytest.raises(RunError, match="exists from an interrupted run; use --resume"):
        _sink(tmp_path).open(resume=False, overwrite=False)


def test_names_with_line_breaks_are_one_row_each_however_spelled(tmp_path):
    names = [str(tmp_path / f"a{brk}b.fits") for brk in ("\n", "\r", "\u2028", "\x85")]
    sink = _sink(tmp_path)
    sink.open(resume=False, overwrite=False)
    for name in names:
        sink.add({"id": "x", "file": name, "status": "ok"})
    sink.close()
    again = _sink(tmp_path)
    done = again.open(resume=True, overwrite=False)
    again.close()
    assert done == set(names) and count_rows(sink.partial, "csv") == 4
    assert canonical_key(str(tmp_path / "." / "a\nb.fits")) in done


def test_a_fits_table_holds_units_keywords_and_any_name(tmp_path):
    """Keywords in the table's own header (Table.read(...).meta and STILTS saw none), units,
    missing values, and names FITS cannot hold (é, an ESC, a newline) without a traceback."""
    meta = [("CLASSES", "a,é", "classes"), ("TEMPERAT", 1.5, "temperature"),
            ("SRCFILE", "/x" * 60, "a long path")]
    sink = _sink(tmp_path, "t.fits", "fits", meta)
    sink.open(resume=False, overwrite=False)
    sink.add({"id": "é", "file": "dir/é\x1b\n.fits", "hdu": 1, "ra": 10.5, "p_a": 0.25,
              "v": np.array([1.0, 2.0], np.float32), "status": "ok"})
    sink.add({"id": "y", "file": "y.fits", "status": "error: empty"})
    sink.finish()
    table = Table.read(sink.out_path, hdu=1)
    assert table.colnames == [c.name for c in COLUMNS] and len(table) == 2
    assert str(table["ra"].unit) == "deg" and table["v"].shape == (2, 2)
    assert list(table["hdu"].filled(-1)) == [1, -1] and table["hdu"].mask[1]  # TNULL -1
    assert np.isnan(fits.getdata(sink.out_path, 1)["ra"][1]) and table["file"][1] == "y.fits"
    assert np.isnan(fits.getdata(sink.out_path, 1)["v"][1]).all()
    assert from_fits_text(table["file"][0]) == "dir/é\x1b\n.fits"
    assert table.meta["TEMPERAT"] == 1.5 and from_fits_text(table.meta["CLASSES"]) == "a,é"
    assert fits.getheader(sink.out_path, 0)["SRCFILE"] == "/x" * 60
    assert not os.path.exists(sink.partial) and count_rows(sink.out_path, "fits") == 2
    verdict = fitsverify(sink.out_path)
    assert verdict is None or verdict.startswith("verification OK"), verdict


def test_the_fits_table_is_written_in_fixed_memory(tmp_path, monkeypatch):
    """Rows go from the partial CSV to the FITS file a chunk at a time (the whole table was
    parsed into memory before: 1.24 GB at the end of embed for 100,000 vectors)."""
    import galcnn.runner.table as table

    partial = tmp_path / "big.partial"
    with open(partial, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([c.name for c in COLUMNS])
        for i in range(2500):
            writer.writerow([f"o{i}", f"f{i}.fits", i, "1.0", "0.5", "1 2 3", "ok"])
    chunks = []
    write = table._write_records
    monkeypatch.setattr(table, "CHUNK_ROWS", 1000)
    monkeypatch.setattr(table, "_write_records",
                        lambda handle, chunk, dtype: chunks.append(len(chunk)) or
                        write(handle, chunk, dtype))
    write_fits_table(str(partial), str(tmp_path / "big.fits"), COLUMNS, [])
    assert chunks == [1000, 1000, 500]
    data = fits.getdata(tmp_path / "big.fits", 1)
    assert len(data) == 2500 and data["hdu"][-1] == 2499 and data["v"].shape == (2500, 3)
