"""``galcnn explain`` on the command line: what it says and its exit status."""

from __future__ import annotations

import os

from click.testing import CliRunner

from galcnn.cli import cli

from helpers import csv_rows


def test_failed_inputs_are_named_and_the_exit_status_says_so(classifier, cutouts, tmp_path):
    (cutouts / "notfits.fits").write_text("hello")
    out = tmp_path / "explained"
    result = CliRunner().invoke(cli, ["explain", classifier, str(cutouts), "-o", str(out),
                                      "--no-png", "--steps", "2"])
    assert result.exit_code == 3, result.output
    assert "Explained 12 cutouts into" in result.output and "1 failed" in result.output
    assert "notfits.fits" in result.output and "Traceback" not in result.output
    assert len(csv_rows(os.path.join(out, "index.csv"))) == 13


def test_an_unknown_class_is_a_one_line_error(classifier, cutouts, tmp_path):
    result = CliRunner().invoke(cli, ["explain", classifier, str(cutouts), "-o",
                                      str(tmp_path / "x"), "--class", "merger"])
    assert result.exit_code == 1
    assert "unknown class 'merger' to explain" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()
