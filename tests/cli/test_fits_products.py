"""Every FITS product, as FITS readers see it: fitsverify, astropy's Table.read, ICRS.

Before the runner layer: a file named ``é.fits`` made predict --format fits and embed end in a
UnicodeEncodeError after every row was computed; the FITS tables kept their keywords in the
primary HDU (``Table.read(...).meta`` empty) with no units; a catalogue table failed
``fitsverify`` (HIERARCH keyword, long strings without LONGSTRN), so did a .seg.fits of an
input whose path is over 68 characters; segment's catalogue gave a FK5 header's coordinates
while the other commands gave ICRS.
"""

from __future__ import annotations

import glob
import os
import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from click.testing import CliRunner

from galcnn.cli import cli
from galcnn.data.fitsheader import from_fits_text
from helpers import fitsverify

pytestmark = pytest.mark.slow

LONG = "a_folder_whose_name_is_long_enough_that_any_path_below_it_needs_continuing_cards"


@pytest.fixture()
def odd_inputs(cutouts, field_file, tmp_path):
    """Three cutouts (one named é) and a FK5 field, under a path over 68 characters."""
    folder = tmp_path / LONG / "in"
    folder.mkdir(parents=True)
    names = sorted(os.listdir(cutouts))[:3]
    for i, name in enumerate(names):
        target = "é.fits.fz" if i == 0 else name
        shutil.copy(cutouts / name, folder / target)
    with fits.open(field_file) as hdul:
        header = hdul[0].header.copy()
        data = hdul[0].data
    header["RADESYS"], header["EQUINOX"] = "FK5", 2000.0
    field = tmp_path / LONG / "field" / "fk5_field.fits"
    field.parent.mkdir()
    fits.PrimaryHDU(data, header=header).writeto(field)
    return str(folder), str(field)


def _run(args) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.output


def _verified(path) -> None:
    verdict = fitsverify(path)
    assert verdict is None or verdict.startswith("verification OK"), (path, verdict)


def test_every_fits_product_verifies_and_reads_with_its_metadata(classifier, unet, odd_inputs,
                                                                tmp_path):
    folder, field = odd_inputs
    out = tmp_path / LONG / "out"
    _run(["predict", classifier, folder, "-o", out / "beliefs.fits"])
    _run(["embed", classifier, folder, "-o", out / "vectors.fits"])
    _run(["explain", classifier, folder, "-o", out / "explained", "--no-png"])
    _run(["segment", unet, field, "-o", out / "seg", "--catalogue-format", "fits", "--no-tta"])
    products = sorted(glob.glob(str(out / "**" / "*.fits"), recursive=True))
    assert len(products) == 2 + 3 + 2, products  # tables, explain's maps, .seg.fits + catalogue
    for path in products:
        _verified(path)

    for name in ("beliefs.fits", "vectors.fits", os.path.join("seg", "fk5_field.cat.fits")):
        table = Table.read(out / name)
        assert len(table.meta["MODELSHA"]) == 64 and table.meta["RADESYS"] == "ICRS", name
        assert str(table["ra"].unit) == "deg" and str(table["dec"].unit) == "deg", name
    beliefs = Table.read(out / "beliefs.fits")
    assert from_fits_text(beliefs.meta["CLASSES"]).split(",") == [
        c[2:] for c in beliefs.colnames if c.startswith("p_")]
    assert sorted(from_fits_text(f) for f in beliefs["id"]) == sorted(
        ["é"] + [n.split(".")[0] for n in sorted(os.listdir(folder))[:2]])
    vectors = Table.read(out / "vectors.fits")
    assert vectors["embedding"].shape == (3, vectors.meta["EMBDIM"])
    explained = glob.glob(str(out / "explained" / "é.fits"))
    assert explained, os.listdir(out / "explained")


def test_a_fk5_field_is_catalogued_in_icrs(unet, odd_inputs, tmp_path):
    _, field = odd_inputs
    _run(["segment", unet, field, "-o", tmp_path / "seg", "--catalogue-format", "fits",
          "--no-tta"])
    catalogue = Table.read(tmp_path / "seg" / "fk5_field.cat.fits")
    assert len(catalogue) > 0
    wcs = WCS(fits.getheader(field)).celestial
    in_fk5 = wcs.pixel_to_world(np.asarray(catalogue["x"]), np.asarray(catalogue["y"]))
    assert in_fk5.frame.name == "fk5"
    in_icrs = in_fk5.icrs
    assert np.allclose(catalogue["ra"], in_icrs.ra.deg, atol=1e-9)
    assert np.allclose(catalogue["dec"], in_icrs.dec.deg, atol=1e-9)
    # the header's own FK5 values are some 20 mas away: the table did convert
    assert np.abs(catalogue["ra"] - in_fk5.ra.deg).max() * 3.6e6 > 5
    assert fits.getval(tmp_path / "seg" / "fk5_field.cat.fits", "RADESYS", ext=1) == "ICRS"
