import gzip
import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from helpers import SAMPLE_DATA, gzip_bomb, noise_image, tile_bomb, write_fits
from galcnn.data.fitsio import FitsReadError, centre_radec, parse_hdu, read_image


def test_plane_becomes_one_band_float32_native(tmp_path):
    data = np.arange(12, dtype=">i2").reshape(3, 4)
    image = read_image(write_fits(tmp_path / "p.fits", data))
    assert image.data.shape == (1, 3, 4)
    assert image.data.dtype == np.float32 and image.data.dtype.isnative
    np.testing.assert_array_equal(image.data[0], data.astype(np.float32))
    assert image.hdu == 0 and image.n_bad == 0


def test_cube_keeps_band_order_and_names(tmp_path):
    data = np.stack([np.full((5, 6), b, dtype=np.uint8) for b in (10, 20, 30)])
    header = fits.Header({"BANDS": "g,r,i"})
    image = read_image(write_fits(tmp_path / "c.fits", data, header=header))
    assert image.data.shape == (3, 5, 6)
    assert image.data[:, 0, 0].tolist() == [10, 20, 30]
    assert image.band_names == ["g", "r", "i"]


def test_first_image_hdu_found_automatically_and_by_name(tmp_path):
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=[1.0])])
    hdus = [fits.PrimaryHDU(), table, fits.ImageHDU(np.ones((4, 4)), name="SCI"),
            fits.ImageHDU(np.zeros((4, 4)), name="WHT")]
    path = write_fits(tmp_path / "mef.fits", hdus=hdus)
    assert read_image(path).hdu == 2
    assert read_image(path, hdu="wht").data.sum() == 0
    assert read_image(path, hdu=3).extname == "WHT"


def test_tile_compressed_and_gzip(tmp_path):
    data = noise_image((20, 24))
    fz = write_fits(tmp_path / "a.fits.fz", hdus=[
        fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="RICE_1", quantize_level=-0.001)])
    image = read_image(fz)
    assert image.hdu == 1 and image.data.shape == (1, 20, 24)
    np.testing.assert_allclose(image.data[0], data, atol=2e-3)
    plain = write_fits(tmp_path / "b.fits", data)
    gz = tmp_path / "b.fits.gz"
    gz.write_bytes(gzip.compress(open(plain, "rb").read()))
    np.testing.assert_array_equal(read_image(str(gz)).data[0], data)


def test_bscale_bzero_and_blank(tmp_path):
    raw = np.array([[0, 1], [2, -32768]], dtype=np.int16)
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BLANK"] = -32768
    hdu.header["BSCALE"] = 0.5
    hdu.header["BZERO"] = 10.0
    path = str(tmp_path / "s.fits")
    hdu.writeto(path)
    image = read_image(path)
    assert image.n_bad == 1
    np.testing.assert_array_equal(image.data[0, 0], [10.0, 10.5])
    assert image.data[0, 1, 0] == 11.0 and np.isnan(image.data[0, 1, 1])


def test_blank_without_scaling(tmp_path):
    raw = np.array([[5, 99], [7, 8]], dtype=np.int32)
    hdu = fits.PrimaryHDU(raw)
    hdu.header["BLANK"] = 99
    path = str(tmp_path / "b.fits")
    hdu.writeto(path)
    image = read_image(path)
    assert image.n_bad == 1 and np.isnan(image.data[0, 0, 1])


def test_nan_and_inf_counted_as_bad(tmp_path):
    data = np.ones((4, 4), dtype=np.float64)
    data[0, 0], data[1, 1], data[2, 2] = np.nan, np.inf, -np.inf
    image = read_image(write_fits(tmp_path / "n.fits", data))
    assert image.n_bad == 3 and np.isnan(image.data).sum() == 3


def test_degenerate_radio_axes_are_dropped(tmp_path):
    data = np.ones((1, 1, 6, 7), dtype=np.float32)
    assert read_image(write_fits(tmp_path / "r.fits", data)).data.shape == (1, 6, 7)


def test_one_file_per_band_stacks_in_order(tmp_path):
    paths = [write_fits(tmp_path / f"o_{b}.fits", np.full((3, 3), v, np.float32))
             for b, v in (("g", 1), ("r", 2))]
    image = read_image(paths)
    assert image.data[:, 0, 0].tolist() == [1, 2]
    other = write_fits(tmp_path / "o_i.fits", np.ones((4, 4), np.float32))
    with pytest.raises(FitsReadError, match="first band is 3x3"):
        read_image(paths + [other])


@pytest.mark.parametrize("content,problem", [
    (b"", "empty file"),
    (b"this is not a fits file at all" * 200, "not a FITS file"),
])
def test_unreadable_files_give_one_line_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "bad.fits"
    path.write_bytes(content)
    with pytest.raises(FitsReadError, match=problem) as info:
        read_image(str(path))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_file(tmp_path):
    path = write_fits(tmp_path / "t.fits", np.ones((100, 100), np.float32))
    content = open(path, "rb").read()
    open(path, "wb").write(content[: len(content) // 2])
    with pytest.raises(FitsReadError, match="truncated"):
        read_image(path)


def test_missing_file_table_only_and_bad_hdu_choice(tmp_path):
    with pytest.raises(FitsReadError, match="file not found"):
        read_image(str(tmp_path / "nope.fits"))
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=[1.0])])
    path = write_fits(tmp_path / "t.fits", hdus=[fits.PrimaryHDU(), table])
    with pytest.raises(FitsReadError, match="no image HDU"):
        read_image(path)
    with pytest.raises(FitsReadError, match="is a table"):
        read_image(path, hdu=1)
    with pytest.raises(FitsReadError, match="HDU 5 does not exist"):
        read_image(path, hdu=5)
    with pytest.raises(FitsReadError, match="EXTNAME 'SCI'"):
        read_image(path, hdu="SCI")


def test_four_dimensional_data_rejected(tmp_path):
    path = write_fits(tmp_path / "h.fits", np.ones((2, 2, 4, 4), np.float32))
    with pytest.raises(FitsReadError, match="4-D data"):
        read_image(path)


def test_parse_hdu():
    assert parse_hdu(None) is None and parse_hdu("auto") is None
    assert parse_hdu("1") == 1 and parse_hdu("SCI") == "SCI"
    with pytest.raises(ValueError):
        parse_hdu("-1")


def test_centre_radec_from_wcs_and_nan_without():
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [150.0, 2.0]
    wcs.wcs.crpix = [5.5, 5.5]  # 1-based: the centre of a 10x10 image
    wcs.wcs.cdelt = [-1e-4, 1e-4]
    ra, dec = centre_radec(wcs.to_header(), (10, 10))
    assert ra == pytest.approx(150.0, abs=1e-9) and dec == pytest.approx(2.0, abs=1e-9)
    assert all(np.isnan(centre_radec(fits.Header(), (10, 10))))


@pytest.mark.parametrize("fraction", [0.02, 0.1, 0.2, 0.4, 0.6, 0.75])
def test_a_truncated_compressed_file_says_truncated(tmp_path, fraction):
    """Cut inside the primary header, the compressed image's header, or its data."""
    source = os.path.join(SAMPLE_DATA, "mirabest", "cutouts",
                          sorted(os.listdir(os.path.join(SAMPLE_DATA, "mirabest", "cutouts")))[0])
    content = open(source, "rb").read()
    path = tmp_path / "cut.fits.fz"
    path.write_bytes(content[: int(len(content) * fraction)])
    with pytest.raises(FitsReadError) as raised:
        read_image(str(path))
    assert raised.value.problem.startswith("truncated file"), raised.value.problem


def test_an_image_larger_than_any_cutout_is_refused_from_its_header(tmp_path):
    """A few hundred KB of gzip that decodes to 8193 x 8193 float32 (the issue's: 1.5 MB to
    20000 x 20000, 3.8 GB of memory before the band check) is refused unread."""
    bomb = gzip_bomb(tmp_path / "bomb.fits.gz", 8193)
    assert os.path.getsize(bomb) < 400_000
    with pytest.raises(FitsReadError) as raised:
        read_image(bomb)
    assert raised.value.problem == (
        "HDU 0 declares 8193x8193 pixels (0.3 GiB as float32), more than a cutout needs: "
        "refused before decoding (limit 67,108,864 pixels; galcnn --max-pixels N to raise it)")
    small = write_fits(tmp_path / "ok.fits", np.ones((40, 40), np.float32))
    assert read_image(small, max_pixels=1600).data.shape == (1, 40, 40)
    with pytest.raises(FitsReadError, match="declares 40x40 pixels"):
        read_image(small, max_pixels=1599)


def test_a_crafted_tile_is_refused_before_decoding(tmp_path):
    """An 11 KB .fz whose ZNAXIS and ZTILE say 40000 killed predict with SIGSEGV under a
    memory limit (astropy alone segfaults too); a field (no size limit) still may not
    declare a tile that large."""
    from galcnn.data.fitsio import image_hdus

    bomb = tile_bomb(tmp_path / "bomb.fits.fz")
    assert os.path.getsize(bomb) < 20_000
    with pytest.raises(FitsReadError, match="declares 40000x40000 pixels"):
        read_image(bomb)
    with pytest.raises(FitsReadError) as raised:
        image_hdus(bomb)
    assert raised.value.problem == ("HDU 1 declares compression tiles of 40000x40000 pixels: "
                                    "refused before decoding (limit 67,108,864 pixels a tile)")


@pytest.mark.slow
def test_reading_a_bomb_stays_small_in_memory(tmp_path):
    """Peak resident memory of a process that meets the 20000 x 20000 bomb: it was 3.8 GB."""
    import subprocess
    import sys

    bomb = gzip_bomb(tmp_path / "bomb.fits.gz", 20000)
    code = ("import resource, sys\nfrom galcnn.data.fitsio import read_image, FitsReadError\n"
            "try:\n    read_image(sys.argv[1])\nexcept FitsReadError as exc:\n"
            "    print(exc.problem)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)")
    done = subprocess.run([sys.executable, "-c", code, bomb], capture_output=True, text=True,
                          timeout=120)
    problem, peak_mib = done.stdout.strip().splitlines()
    assert problem.startswith("HDU 0 declares 20000x20000 pixels (1.5 GiB as float32)")
    assert int(peak_mib) < 1024, peak_mib  # the bound; about 300 MiB seen
