"""``galcnn predict`` on the command line: rows for bad files, exit codes, FITS."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner

from galcnn.cli import cli

from helpers import SAMPLE_DATA, csv_rows, write_fits


def test_good_and_bad_files_all_get_rows_and_the_exit_status_says_so(classifier, cutouts,
                                                                     tmp_path):
    (cutouts / "empty.fits").write_bytes(b"")
    (cutouts / "notfits.fits").write_text("hello")
    write_fits(cutouts / "nan.fits", np.full((32, 32), np.nan, dtype=np.float32))
    write_fits(cutouts / "cube.fits", np.ones((3, 32, 32), dtype=np.float32))
    good = open(sorted(glob.glob(str(cutouts / "*.fz")))[0], "rb").read()
    (cutouts / "truncated.fits.fz").write_bytes(good[: len(good) // 2])
    out = tmp_path / "mixed.csv"
    result = CliRunner().invoke(cli, ["predict", classifier, str(cutouts), "-o", str(out)])
    assert result.exit_code == 3, result.output
    rows = {os.path.basename(r["file"]): r for r in csv_rows(out)}
    assert len(rows) == 17
    assert sum(r["status"] == "ok" for r in rows.values()) == 12
    assert rows["empty.fits"]["status"].startswith("error: ") and \
        "empty" in rows["empty.fits"]["status"]
    assert "NaN" in rows["nan.fits"]["status"]
    assert "has 3 band(s), the model needs 1" in rows["cube.fits"]["status"]
    assert "truncated" in rows["truncated.fits.fz"]["status"]
    assert rows["notfits.fits"]["predicted"] == "" and rows["notfits.fits"]["p_elliptical"] == ""
    assert "5 failed" in result.output and "Traceback" not in result.output
    for name in ("empty.fits", "nan.fits", "cube.fits"):
        assert name in result.output  # one line on stderr per failed file


def test_cli_exit_codes_and_fits_output(classifier, cutouts, tmp_path):
    runner = CliRunner()
    out = tmp_path / "p.fits"
    result = runner.invoke(cli, ["predict", classifier, str(cutouts), "-o", str(out),
                                 "--format", "fits"])
    assert result.exit_code == 0, result.output
    table = Table.read(out, hdu=1)
    assert len(table) == 12 and "p_spiral_cw" in table.colnames
    classes = ["edge_on", "elliptical", "spiral_acw", "spiral_cw"]
    np.testing.assert_allclose(np.sum([table[f"p_{c}"] for c in classes], axis=0), 1, atol=1e-5)
    assert fits.getheader(out, 0)["CLASSES"] == ",".join(classes)
    assert not os.path.exists(f"{out}.partial")
    result = runner.invoke(cli, ["predict", classifier, str(cutouts), "-o", str(out)])
    assert result.exit_code == 1 and "--overwrite" in result.output
    result = runner.invoke(cli, ["predict", classifier, str(cutouts), "-o", "x.csv",
                                 "--shard", "5/2"])
    assert result.exit_code == 2 and "between 1 and N" in result.output
    result = runner.invoke(cli, ["predict", str(cutouts / os.listdir(cutouts)[0]), str(cutouts),
                                 "-o", str(tmp_path / "y.csv")])
    assert result.exit_code == 1 and "checkpoint" in result.output


def test_a_model_for_other_bands_is_said_once(classifier, tmp_path):
    folder = tmp_path / "cubes"
    for i in range(6):
        write_fits(folder / f"c{i}.fits", np.ones((3, 32, 32), dtype=np.float32) * i)
    result = CliRunner().invoke(cli, ["predict", classifier, str(folder), "-o",
                                      str(tmp_path / "p.csv")])
    assert result.exit_code == 3
    lines = [line for line in result.stderr.splitlines() if "band" in line]
    assert lines == [f"galcnn predict: 6 inputs: has 3 band(s), the model needs 1 "
                     f"(e.g. {folder / 'c0.fits'})"]
    assert len(csv_rows(tmp_path / "p.csv")) == 6  # every file still has its row


def test_ids_are_file_names_that_join_the_label_table(classifier, tmp_path):
    """The README's id: the file name without extensions, here Galaxy Zoo's objid."""
    out = tmp_path / "gz1.csv"
    result = CliRunner().invoke(cli, ["predict", classifier, os.path.join(SAMPLE_DATA, "gz1"),
                                      "-o", str(out)])
    assert result.exit_code == 3  # 3-band cutouts, a 1-band model: rows with their problem
    labels = csv_rows(os.path.join(SAMPLE_DATA, "gz1", "labels.csv"))
    assert {r["id"] for r in csv_rows(out)} == {r["objid"] for r in labels}


def test_the_table_format_follows_the_output_name_and_a_contradiction_is_refused(
        classifier, cutouts, tmp_path):
    """--format fits -o p.csv wrote a FITS file named .csv."""
    runner = CliRunner()
    result = runner.invoke(cli, ["predict", classifier, str(cutouts), "-o",
                                 str(tmp_path / "p.csv"), "--format", "fits"])
    assert result.exit_code == 2 and not (tmp_path / "p.csv").exists()
    assert (f"Invalid value for '--format': --format fits does not fit the output "
            f"{tmp_path / 'p.csv'}: name it .fits, or leave --format out") in result.output
    result = runner.invoke(cli, ["predict", classifier, str(cutouts), "-o",
                                 str(tmp_path / "q.fits")])
    assert result.exit_code == 0, result.output
    assert open(tmp_path / "q.fits", "rb").read(6) == b"SIMPLE"


def test_spread_is_the_new_name_of_predicts_tta(classifier, cutouts, tmp_path):
    """--tta meant 'add the spread' here and 'pool or not' in evaluate and segment."""
    runner = CliRunner()
    new = runner.invoke(cli, ["predict", classifier, str(cutouts), "-o", str(tmp_path / "a.csv"),
                              "--spread"])
    old = runner.invoke(cli, ["predict", classifier, str(cutouts), "-o", str(tmp_path / "b.csv"),
                              "--tta"])
    assert new.exit_code == old.exit_code == 0, old.output
    assert "--tta is now --spread" in old.output and "--tta" not in new.output
    assert [r["spread"] for r in csv_rows(tmp_path / "a.csv")] == \
        [r["spread"] for r in csv_rows(tmp_path / "b.csv")]
    assert all(r["spread"] for r in csv_rows(tmp_path / "a.csv"))
    assert "--tta" not in runner.invoke(cli, ["predict", "--help"]).output


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_a_reading_worker_killed_mid_run_loses_no_row(classifier, tmp_path):
    """SIGKILL of one reading worker (what the out-of-memory killer does) left predict at
    640/800 rows, 0 % CPU, no message, forever."""
    import signal
    import subprocess
    import sys
    import time

    files = sorted(glob.glob(os.path.join(SAMPLE_DATA, "simulated", "*", "*.fits.fz")))
    links = tmp_path / "links"
    links.mkdir()
    listing = tmp_path / "list.txt"
    with open(listing, "w") as handle:
        for i in range(800):
            link = links / f"{i:04d}.fits.fz"
            os.link(files[i % len(files)], link)
            handle.write(f"{link}\n")
    out = tmp_path / "p.csv"
    process = subprocess.Popen([sys.executable, "-m", "galcnn", "predict", classifier,
                                f"@{listing}", "-o", str(out), "-j", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial, killed, deadline = f"{out}.partial", None, time.monotonic() + 60
    while killed is None and process.poll() is None and time.monotonic() < deadline:
        if os.path.exists(partial) and os.path.getsize(partial) > 2000:
            with open(f"/proc/{process.pid}/task/{process.pid}/children") as handle:
                children = [int(p) for p in handle.read().split()]
            if children:
                killed = children[0]
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.01)
    stdout, stderr = process.communicate(timeout=120)
    assert killed is not None, "the run ended before a worker could be killed"
    assert process.returncode == 0, stderr
    assert "a reading process died (killed: out of memory, or by a signal)" in stderr
    rows = csv_rows(out)
    assert len(rows) == 800 and len({r["file"] for r in rows}) == 800
    assert all(r["status"] == "ok" for r in rows)


def test_an_array_task_says_how_many_of_its_inputs_it_took(classifier, cutouts, tmp_path,
                                                           monkeypatch):
    """With Slurm array variables set and a list per task, a task given 60 inputs wrote 22
    rows, exit 0, and said nothing."""
    for key, value in {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "0",
                       "SLURM_ARRAY_TASK_MAX": "2", "SLURM_ARRAY_TASK_STEP": "1",
                       "SLURM_ARRAY_TASK_COUNT": "3"}.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "part.csv"
    result = CliRunner().invoke(cli, ["predict", classifier, str(cutouts), "-o", str(out)])
    assert result.exit_code == 0, result.output
    mine = len(csv_rows(out))
    assert 0 < mine < 12
    assert (f"galcnn predict: Slurm array task: shard 2/3 of the inputs, {mine} of the 12 "
            f"given; the other {12 - mine} are left to the array's other tasks (--shard 1/1 "
            "takes every input given)") in result.output
    every = CliRunner().invoke(cli, ["predict", classifier, str(cutouts), "-o",
                                     str(tmp_path / "all.csv"), "--shard", "1/1"])
    assert every.exit_code == 0 and len(csv_rows(tmp_path / "all.csv")) == 12
    assert "Slurm array task" not in every.output
