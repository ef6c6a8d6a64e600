"""``galcnn prepare`` on the command line: reports, bad input, exit status."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from click.testing import CliRunner

from galcnn.cli import cli
from galcnn.cli.main import EXIT_SOME_FAILED

from helpers import SAMPLE_DATA, manifest_rows, metadata, noise_image, write_fits


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def radio_set(root, n: int, listed: int, extra: str = ""):
    """``n`` noise cutouts under ``root/cutouts`` and a labels.csv listing the first
    ``listed`` (FRI/FRII alternating, the first four confident), then ``extra`` rows."""
    for i in range(n):
        write_fits(root / "cutouts" / f"o{i}.fits", noise_image(seed=i))
    (root / "labels.csv").write_text(
        "file,label,confident\n" + "".join(
            f"cutouts/o{i}.fits,{'FRI' if i % 2 else 'FRII'},{int(i < 4)}\n"
            for i in range(listed)) + extra)


def test_label_table_found_inside_directory_and_reports_written(tmp_path):
    root = tmp_path / "set"
    radio_set(root, 6, 5, "cutouts/missing.fits,FRI,1\ncutouts/o0.fits.bak,hybrid,1\n")
    out = str(tmp_path / "out")
    result = run_cli("prepare", root, "-o", out, "--classes", "FRII,FRI", "--where",
                     "confident=1", "--val-fraction", "0")
    assert result.exit_code == 0, result.output
    meta = metadata(out)
    assert meta["classes"] == ["FRII", "FRI"]
    assert meta["class_counts"]["train"] == {"FRII": 2, "FRI": 2}
    assert meta["dropped_classes"] == {} and meta["labels"]["rows_filtered_out"] == 1
    assert meta["labels"]["label_column"] == "label"
    unlabelled = open(os.path.join(out, "unlabelled.txt")).read().split()
    assert sorted(os.path.basename(p) for p in unlabelled) == ["o4.fits", "o5.fits"]
    missing = open(os.path.join(out, "missing_files.txt")).read().split()
    assert missing == ["cutouts/missing.fits", "cutouts/o0.fits.bak"]
    assert "Files with no label: 2" in result.stdout and "Labels with no file: 2" in result.stdout
    rows = manifest_rows(out)
    assert {r["label_index"] for r in rows if r["label"] == "FRII"} == {"0"}


def _bad_inputs(root):
    """A directory of good cutouts and one of each kind of bad input."""
    for i in range(4):
        write_fits(root / f"good{i}.fits", noise_image(seed=i))
    (root / "empty.fits").write_bytes(b"")
    (root / "text.fits").write_text("SIMPLE? no, this is a text file\n" * 100)
    big = write_fits(root / "truncated.fits", noise_image((32, 32)))
    content = open(big, "rb").read()
    open(big, "wb").write(content[: len(content) - 2000])
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=[1.0])])
    write_fits(root / "table.fits", hdus=[fits.PrimaryHDU(), table])
    write_fits(root / "allnan.fits", np.full((32, 32), np.nan, np.float32))
    half = noise_image()
    half[:20] = np.nan
    write_fits(root / "mostlynan.fits", half)
    write_fits(root / "cube.fits", noise_image(bands=3))
    write_fits(root / "tiny.fits", noise_image((8, 8)))
    write_fits(root / "wide.fits", noise_image((32, 40)))
    return {
        "empty.fits": "empty file", "text.fits": "not a FITS file",
        "truncated.fits": "truncated", "table.fits": "no image HDU",
        "allnan.fits": "every pixel is NaN", "mostlynan.fits": "62% of pixels",
        "cube.fits": "has 3 band(s), expected 1", "tiny.fits": "too small: 8x8",
        "wide.fits": "is 40x32 pixels, the others are 32x32",
    }


def test_bad_inputs_are_named_and_the_run_goes_on(tmp_path):
    root = tmp_path / "mixed"
    expected = _bad_inputs(root)
    out = str(tmp_path / "out")
    result = run_cli("prepare", root, "-o", out, "--no-labels", "-j", "2")
    assert result.exit_code == EXIT_SOME_FAILED
    with open(os.path.join(out, "failed.csv"), newline="") as handle:
        failed = {os.path.basename(r["file"]): r["problem"] for r in csv.DictReader(handle)}
    assert set(failed) == set(expected)
    for name, fragment in expected.items():
        assert fragment in failed[name], (name, failed[name])
        line = [ln for ln in result.stderr.splitlines() if name in ln]
        assert len(line) == 1 and fragment in line[0]
    assert "Traceback" not in result.output
    rows = manifest_rows(out)
    assert sorted(os.path.basename(r["file"]) for r in rows) == [f"good{i}.fits" for i in range(4)]
    assert {r["split"] for r in rows} == {"unlabelled"}
    assert f"Failed: {len(expected)}" in result.stdout


def test_refuses_to_overwrite_then_replaces(class_dirs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli("prepare", class_dirs, "-o", out)
    assert result.exit_code == 1 and "already exists" in result.output
    assert (out / "keep.txt").exists()
    result = run_cli("prepare", class_dirs, "-o", out, "--overwrite")
    assert result.exit_code == 0 and not (out / "keep.txt").exists()
    assert (out / "metadata.json").exists()


def test_nothing_readable_writes_nothing(tmp_path):
    (tmp_path / "a.fits").write_bytes(b"")
    (tmp_path / "b.fits").write_text("nope")
    out = tmp_path / "out"
    result = run_cli("prepare", tmp_path / "a.fits", tmp_path / "b.fits", "-o", out)
    assert result.exit_code == 1 and "could be read" in result.output
    assert not out.exists() and "Traceback" not in result.output


def test_band_pattern_wcs_and_float16(tmp_path):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [10.0, -5.0]
    wcs.wcs.crpix = [16.5, 16.5]
    wcs.wcs.cdelt = [-1e-4, 1e-4]
    for obj in range(3):
        for band, value in (("g", 1.0), ("r", 2.0)):
            write_fits(tmp_path / "in" / f"obj{obj}_{band}.fits", noise_image(seed=obj) * value,
                       header=wcs.to_header())
    out = str(tmp_path / "out")
    result = run_cli("prepare", tmp_path / "in", "-o", out, "--band-pattern", "{id}_{band}.fits",
                     "--bands", "r,g", "--dtype", "float16", "--no-labels")
    assert result.exit_code == 0, result.output
    meta = metadata(out)
    recipe = meta["preprocess"]
    assert recipe["bands"] == ["r", "g"] and recipe["dtype"] == "float16"
    assert recipe["band_pattern"] == "{id}_{band}.fits"
    rows = manifest_rows(out)
    assert rows[0]["id"] == "obj0" and rows[0]["file"].count(";") == 1
    assert rows[0]["file"].split(";")[0].endswith("obj0_r.fits")
    assert float(rows[0]["ra"]) == pytest.approx(10.0, abs=1e-6)
    assert float(rows[0]["dec"]) == pytest.approx(-5.0, abs=1e-6)
    assert np.load(os.path.join(out, rows[0]["shard"])).dtype == np.float16


def test_cli_usage_errors_exit_2(class_dirs, tmp_path):
    assert run_cli("prepare", class_dirs, "-o", tmp_path / "o", "--size", "big").exit_code == 2
    result = run_cli("prepare", class_dirs, "-o", tmp_path / "o", "--copies", "2")
    assert result.exit_code == 2 and "--augment" in result.output
    assert run_cli("prepare", "-o", tmp_path / "o").exit_code == 2


def test_plain_progress_lines_when_not_a_terminal(class_dirs, tmp_path):
    result = run_cli("prepare", class_dirs, "-o", tmp_path / "o")
    assert "prepare: 8/8 cutouts" in result.stderr


def test_sample_data_prepares(tmp_path):
    root = SAMPLE_DATA
    result = run_cli("prepare", os.path.join(root, "simulated"), "-o", tmp_path / "sim",
                     "--augment", "rot90", "--copies", "1")
    assert result.exit_code == 0, result.output
    assert metadata(tmp_path / "sim")["classes"] == ["edge_on", "elliptical", "spiral_acw",
                                                     "spiral_cw"]
    result = run_cli("prepare", os.path.join(root, "mirabest"), "-o", tmp_path / "mb")
    prepared = metadata(tmp_path / "mb")["preprocess"]
    assert result.exit_code == 0 and (prepared["size"], prepared["fit"]) == ([75, 75], "resize")
    assert prepared["stretch"]["name"] == "peak"


def test_conflicting_labels_and_a_class_of_one_are_said_on_screen(tmp_path):
    folder = tmp_path / "cutouts"
    for i in range(9):
        write_fits(folder / f"g{i}.fits", noise_image(seed=i))
    rows = [("g0", "a"), ("g0", "b")] + [(f"g{i}", "a" if i < 5 else "b") for i in range(1, 8)]
    rows.append(("g8", "c"))  # a class with one member
    with open(folder / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("id", "label"), *rows])
    result = run_cli("prepare", str(folder), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "labels: 1 id(s) have two different labels and were left unlabelled (e.g. g0)" \
        in result.output
    assert "class c has 1 sample(s), 0 in validation: too few" in result.output


def test_a_weight_column_weights_each_cutout_and_a_bad_weight_is_one_line(tmp_path):
    root = tmp_path / "set"
    radio_set(root, 8, 8)
    out = tmp_path / "prepared"
    result = run_cli("prepare", root, "-o", out, "--weight-column", "confident",
                     "--weight-map", "0=0.25")
    assert result.exit_code == 0, result.output
    weights = {row["id"]: float(row["weight"]) for row in manifest_rows(out)}
    assert weights == {f"o{i}": 1.0 if i < 4 else 0.25 for i in range(8)}
    assert metadata(out)["labels"]["weights"] == {"column": "confident", "map": {"0": 0.25},
                                                  "mean": 0.625}
    (root / "labels.csv").write_text("file,label,confident\ncutouts/o0.fits,FRI,high\n")
    result = run_cli("prepare", root, "-o", tmp_path / "other", "--weight-column", "confident")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "'high' is not a weight" in lines[0] and "labels.csv" in lines[0]
    result = run_cli("prepare", root, "-o", tmp_path / "other", "--weight-map", "0")
    assert result.exit_code == 2 and "write VALUE=WEIGHT" in result.output
