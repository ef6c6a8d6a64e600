"""``galcnn segment`` on the command line: bad inputs, resume, exit status."""

from __future__ import annotations

import pytest

import csv
import os

from click.testing import CliRunner

from galcnn.cli import cli



def test_cli_bad_inputs_resume_and_exit_status(unet, field_file, tmp_path):
    broken = tmp_path / "broken.fits"
    broken.write_bytes(b"SIMPLE  =                    T" + b" " * 100)
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    out = str(tmp_path / "seg")
    args = ["segment", unet, field_file, str(broken), str(empty), "-o", out, "--overlay"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 3, first.output
    assert "empty.fits: empty file (0 bytes)" in first.output
    with open(os.path.join(out, "segment.csv")) as handle:
        rows = list(csv.DictReader(handle))
    statuses = {os.path.basename(r["file"]): r["status"] for r in rows}
    assert statuses["field.fits"] == "ok" and statuses["empty.fits"] == "empty file (0 bytes)"
    assert statuses["broken.fits"] != "ok"
    assert os.path.getsize(os.path.join(out, "field.png")) > 0
    again = CliRunner().invoke(cli, ["segment", unet, field_file, "-o", out])
    assert again.exit_code == 0 and "skipped (existing): 1" in again.output
    missing_model = CliRunner().invoke(cli, ["segment", os.path.join(unet, "nothing.pt"),
                                             field_file, "-o", out])
    assert missing_model.exit_code == 2


@pytest.mark.slow
def test_outputs_of_another_model_are_refused_and_reruns_add_no_rows(unet, field_file,
                                                                      tmp_path):
    from galcnn.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(unet)
    other = str(tmp_path / "other.pt")
    save_checkpoint(other, state["card"].with_updates(training={"note": "another model"}),
                    state["model"])
    out = str(tmp_path / "seg")
    first = CliRunner().invoke(cli, ["segment", unet, field_file, "-o", out])
    assert first.exit_code == 0, first.output
    rows = open(os.path.join(out, "segment.csv")).read().splitlines()
    again = CliRunner().invoke(cli, ["segment", unet, field_file, "-o", out])
    assert again.exit_code == 0 and "skipped (existing): 1" in again.output
    assert open(os.path.join(out, "segment.csv")).read().splitlines() == rows
    refused = CliRunner().invoke(cli, ["segment", other, field_file, "-o", out])
    assert refused.exit_code == 1
    assert "field.seg.fits was written by another model" in refused.output
    assert "--overwrite" in refused.output
    replaced = CliRunner().invoke(cli, ["segment", other, field_file, "-o", out, "--overwrite"])
    assert replaced.exit_code == 0 and "skipped (existing): 0" in replaced.output


@pytest.mark.parametrize("names", [("dirA/x.fits", "dirB/x.fits"), ("y.fits", "y.fits.fz")])
def test_two_inputs_with_one_output_name_are_refused_before_any_work(unet, field_file,
                                                                     tmp_path, names):
    paths = []
    for name in names:
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(open(field_file, "rb").read())
        paths.append(str(path))
    out = tmp_path / "seg"
    for extra in ([], ["--overwrite"]):
        result = CliRunner().invoke(cli, ["segment", unet, *paths, "-o", str(out), *extra])
        assert result.exit_code == 1, result.output
        assert f"{paths[0]} and {paths[1]} would both be written to" in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert not out.exists()
