"""The predictions table: columns, rows, resuming a partial table, FITS output."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from galcnn.card import ModelCard
from galcnn.data.recipe import Preprocess
from galcnn.errors import GalcnnError
from galcnn.stages.predict.table import (columns_for, count_rows, done_files, finish_table,
                                         format_row)

CLASSES = ["a", "b"]


def test_columns_and_rows():
    assert columns_for(CLASSES) == ["id", "file", "hdu", "ra", "dec", "predicted", "p_a", "p_b",
                                    "confidence", "entropy", "spread", "status"]
    row = format_row("x", "x.fits", 1, 10.5, float("nan"), CLASSES, np.array([0.25, 0.75]),
                     0.1)
    assert row == ["x", "x.fits", 1, "10.5000000", "", "b", "0.250000", "0.750000", "0.750000",
                   f"{-(0.25 * np.log(0.25) + 0.75 * np.log(0.75)):.6f}", "0.100000", "ok"]
    failed = format_row("y", "y.fits", "", "", "", CLASSES, status="error: empty file")
    assert failed[5:11] == [""] * 6 and failed[-1] == "error: empty file"


def test_resuming_cuts_a_torn_line_and_checks_the_columns(tmp_path):
    partial = tmp_path / "p.csv.partial"
    header = ",".join(columns_for(CLASSES))
    partial.write_text(f"{header}\nx,x.fits,0,,,a,1,0,1,0,,ok\ny,y.fits,0,,,a,1")
    assert done_files(str(partial), columns_for(CLASSES)) == {os.path.realpath("x.fits")}
    assert partial.read_bytes().endswith(b",ok\r\n")
    with pytest.raises(GalcnnError, match="written by another model"):
        done_files(str(partial), columns_for(["a", "c"]))


def test_names_with_line_breaks_are_one_row_each_however_spelled(tmp_path):
    partial = tmp_path / "p.csv.partial"
    names = [str(tmp_path / f"a{brk}b.fits") for brk in ("\n", "\r", "\u2028", "\x85")]
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns_for(CLASSES))
        for name in names:
            writer.writerow(format_row("x", name, 0, 1.0, 2.0, CLASSES, np.array([0.5, 0.5])))
    assert done_files(str(partial), columns_for(CLASSES)) == set(names)
    assert count_rows(str(partial), "csv") == 4
    spelled = str(tmp_path / "." / "a\nb.fits")  # another spelling of the first name
    from galcnn.data.inputs import canonical_key

    assert canonical_key(spelled) in done_files(str(partial), columns_for(CLASSES))


def test_fits_table_keeps_columns_and_provenance(tmp_path):
    partial = tmp_path / "p.fits.partial"
    partial.write_text(",".join(columns_for(CLASSES)) + "\n"
                       "x,x.fits,1,10.5,-2,b,0.25,0.75,0.75,0.56,,ok\n"
                       "y,y.fits,,,,,,,,,,error: empty\n")
    card = ModelCard(task="classify", classes=CLASSES, preprocess=Preprocess(), model="cnn",
                     model_args={}, temperature=1.5)
    out = str(tmp_path / "p.fits")
    finish_table(str(partial), out, "fits", card, "ab" * 32)
    table = Table.read(out, hdu=1)
    assert table.colnames == columns_for(CLASSES) and count_rows(out, "fits") == 2
    assert list(table["hdu"]) == [1, -1] and np.isnan(fits.getdata(out, 1)["p_a"][1])
    assert list(table["status"]) == ["ok", "error: empty"]
    header = fits.getheader(out, 0)
    assert (header["CLASSES"], header["TEMPERAT"], header["MODELSHA"]) == ("a,b", 1.5, "ab" * 8)
    assert not partial.exists()
