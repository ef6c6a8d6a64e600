"""``galcnn predict``: agreement with the model, symmetry, shards, resume, bad input, formats."""

from __future__ import annotations

import csv
import glob
import os
import shutil

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner

from galcnn.checkpoint import load_model
from galcnn.cli import cli
from galcnn.data.dataset import PreparedDataset
from galcnn.metrics import softmax
from galcnn.data.shards import in_shard, parse_shard, shard_from_env
from galcnn.inference import dataset_logits
from galcnn.stages.predict import PredictError, PredictOptions, columns_for, predict
from galcnn.data.recipe import Preprocess
from galcnn.stages.prepare import PrepareOptions, prepare
from galcnn.stages.train import TrainOptions, train

from conftest import SAMPLE_DATA, write_fits

KINDS = ("elliptical", "spiral_cw", "spiral_acw")


@pytest.fixture(scope="module")
def model_run(tmp_path_factory):
    """A tiny dihedral model (spiral_cw/acw pair) trained for one epoch at 32 px."""
    root = tmp_path_factory.mktemp("model")
    data = str(root / "prepared")
    prepare([os.path.join(SAMPLE_DATA, "simulated")], data, classes=list(KINDS),
            options=PrepareOptions(Preprocess(size=(32, 32))), workers=1)
    run = str(root / "run")
    train(data, run, TrainOptions(width=8, epochs=1, batch_size=16, warmup_epochs=0.5))
    return run


@pytest.fixture
def cutouts(tmp_path):
    """Twelve simulated cutouts (.fits.fz, image in HDU 1) in one flat directory."""
    folder = tmp_path / "cutouts"
    folder.mkdir()
    for kind in KINDS:
        for path in sorted(glob.glob(os.path.join(SAMPLE_DATA, "simulated", kind, "*")))[:4]:
            shutil.copy(path, folder)
    return folder


def _rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_agrees_with_the_model_on_prepared_tensors(model_run, cutouts, tmp_path):
    out = tmp_path / "p.csv"
    result = predict(model_run, [str(cutouts)], str(out), PredictOptions(batch_size=5))
    assert (result.n_ok, result.n_failed, result.n_rows) == (12, 0, 12)
    rows = _rows(out)
    model = load_model(model_run)
    card = model.card
    assert list(rows[0]) == columns_for(card.classes)
    prepared = str(tmp_path / "prep")
    prepare([str(cutouts)], prepared, no_labels=True, workers=1,
            options=PrepareOptions(card.preprocess, val_fraction=0.0))
    data = PreparedDataset(prepared)
    logits, _ = dataset_logits(model, data, torch.device("cpu"))
    expected = softmax(logits, card.temperature)
    by_file = {r["file"]: r for r in rows}
    for row, beliefs in zip(data.rows, expected):
        got = by_file[row["file"]]
        values = np.array([float(got[f"p_{c}"]) for c in card.classes])
        np.testing.assert_allclose(values, beliefs, atol=2e-6)
        assert got["predicted"] == card.classes[int(beliefs.argmax())]
        assert got["status"] == "ok" and got["hdu"] == "1" and got["spread"] == ""
        np.testing.assert_allclose(float(got["entropy"]),
                                   -(beliefs * np.log(beliefs)).sum(), atol=1e-5)


def test_tta_predictions_agree_on_rotated_and_mirrored_copies(model_run, tmp_path):
    source = sorted(glob.glob(os.path.join(SAMPLE_DATA, "simulated", "spiral_cw", "*")))[0]
    with fits.open(source) as hdul:
        image = hdul[1].data.astype(np.float32)
    folder = tmp_path / "copies"
    for k in range(4):
        write_fits(folder / f"rot{k}.fits", np.ascontiguousarray(np.rot90(image, k)))
    write_fits(folder / "mirror.fits", np.ascontiguousarray(image[:, ::-1]))
    out = tmp_path / "tta.csv"
    predict(model_run, [str(folder)], str(out), PredictOptions(tta=True, mc_dropout=2))
    rows = {os.path.basename(r["file"]): r for r in _rows(out)}
    classes = load_model(model_run).card.classes
    beliefs = {name: np.array([float(r[f"p_{c}"]) for c in classes])
               for name, r in rows.items()}
    for k in range(1, 4):
        np.testing.assert_allclose(beliefs[f"rot{k}.fits"], beliefs["rot0.fits"], atol=0.02)
    # a mirror image swaps the winding sense: its spiral_cw belief is the original's spiral_acw
    cw, acw = classes.index("spiral_cw"), classes.index("spiral_acw")
    swapped = beliefs["mirror.fits"].copy()
    swapped[[cw, acw]] = swapped[[acw, cw]]
    np.testing.assert_allclose(swapped, beliefs["rot0.fits"], atol=0.02)
    assert all(r["spread"] != "" for r in rows.values())


def test_tta_without_dropout_is_exactly_invariant(model_run, tmp_path):
    rng = np.random.default_rng(3)
    image = rng.normal(0, 1, (32, 32)).astype(np.float32)
    image[12:20, 10:22] += 30
    folder = tmp_path / "exact"
    for k in range(4):
        write_fits(folder / f"rot{k}.fits", np.ascontiguousarray(np.rot90(image, k)))
    out = tmp_path / "exact.csv"
    predict(model_run, [str(folder)], str(out), PredictOptions(tta=True))
    rows = _rows(out)
    first = [float(rows[0][c]) for c in rows[0] if c.startswith("p_")]
    for row in rows[1:]:
        np.testing.assert_allclose([float(row[c]) for c in row if c.startswith("p_")], first,
                                   atol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_shards_are_disjoint_and_complete(model_run, cutouts, tmp_path, n):
    seen = []
    for k in range(1, n + 1):
        out = tmp_path / f"part{k}.csv"
        try:
            predict(model_run, [str(cutouts)], str(out), shard=(k, n))
        except PredictError as exc:  # an empty part is allowed for small inputs
            assert "no input files in shard" in str(exc)
            continue
        seen.extend(r["file"] for r in _rows(out))
    assert len(seen) == len(set(seen)) == 12


def test_shard_rule_and_slurm_variables():
    keys = [f"dir/file{i}.fits" for i in range(1000)]
    counts = [sum(in_shard(key, (k, 4)) for key in keys) for k in range(1, 5)]
    assert sum(counts) == 1000 and min(counts) > 200
    assert parse_shard("3/10") == (3, 10)
    for bad in ("0/3", "4/3", "x"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "0"}
    assert shard_from_env(env) == (6, 8)
    assert shard_from_env({}) is None


def test_resume_after_a_kill_loses_and_repeats_nothing(model_run, cutouts, tmp_path):
    full = tmp_path / "full.csv"
    predict(model_run, [str(cutouts)], str(full), PredictOptions(batch_size=4))
    lines = open(full).read().splitlines(keepends=True)
    out = tmp_path / "killed.csv"
    # what a kill leaves: header, five complete rows and half of the sixth
    with open(f"{out}.partial", "w") as handle:
        handle.write("".join(lines[:6]) + lines[6][: len(lines[6]) // 2])
    with pytest.raises(PredictError, match="use --resume"):
        predict(model_run, [str(cutouts)], str(out))
    result = predict(model_run, [str(cutouts)], str(out), resume=True)
    assert result.n_skipped_resume == 5 and result.n_ok == 7 and result.n_rows == 12
    assert not os.path.exists(f"{out}.partial")
    assert sorted(open(out).read().splitlines()) == sorted(open(full).read().splitlines())
    again = predict(model_run, [str(cutouts)], str(out), resume=True)  # a requeued job
    assert (again.n_ok, again.n_skipped_resume, again.n_rows) == (0, 12, 12)
    assert sorted(open(out).read().splitlines()) == sorted(open(full).read().splitlines())


def test_good_and_bad_files_all_get_rows_and_the_exit_status_says_so(model_run, cutouts,
                                                                     tmp_path):
    (cutouts / "empty.fits").write_bytes(b"")
    (cutouts / "notfits.fits").write_text("hello")
    write_fits(cutouts / "nan.fits", np.full((32, 32), np.nan, dtype=np.float32))
    write_fits(cutouts / "cube.fits", np.ones((3, 32, 32), dtype=np.float32))
    good = open(sorted(glob.glob(str(cutouts / "*.fz")))[0], "rb").read()
    (cutouts / "truncated.fits.fz").write_bytes(good[: len(good) // 2])
    out = tmp_path / "mixed.csv"
    result = CliRunner().invoke(cli, ["predict", model_run, str(cutouts), "-o", str(out)])
    assert result.exit_code == 3, result.output
    rows = {os.path.basename(r["file"]): r for r in _rows(out)}
    assert len(rows) == 17
    assert sum(r["status"] == "ok" for r in rows.values()) == 12
    assert rows["empty.fits"]["status"].startswith("error: ") and \
        "empty" in rows["empty.fits"]["status"]
    assert "NaN" in rows["nan.fits"]["status"]
    assert "3 band(s), expected 1" in rows["cube.fits"]["status"]
    assert "truncated" in rows["truncated.fits.fz"]["status"]
    assert rows["notfits.fits"]["predicted"] == "" and rows["notfits.fits"]["p_elliptical"] == ""
    assert "5 failed" in result.output and "Traceback" not in result.output
    for name in ("empty.fits", "nan.fits", "cube.fits"):
        assert name in result.output  # one line on stderr per failed file


def test_cli_exit_codes_and_fits_output(model_run, cutouts, tmp_path):
    runner = CliRunner()
    out = tmp_path / "p.fits"
    result = runner.invoke(cli, ["predict", model_run, str(cutouts), "-o", str(out),
                                 "--format", "fits"])
    assert result.exit_code == 0, result.output
    table = Table.read(out, hdu=1)
    assert len(table) == 12 and "p_spiral_cw" in table.colnames
    np.testing.assert_allclose(np.sum([table[f"p_{c}"] for c in KINDS], axis=0), 1, atol=1e-5)
    assert fits.getheader(out, 0)["CLASSES"] == "elliptical,spiral_cw,spiral_acw"
    assert not os.path.exists(f"{out}.partial")
    result = runner.invoke(cli, ["predict", model_run, str(cutouts), "-o", str(out)])
    assert result.exit_code == 1 and "--overwrite" in result.output
    result = runner.invoke(cli, ["predict", model_run, str(cutouts), "-o", "x.csv",
                                 "--shard", "5/2"])
    assert result.exit_code == 2 and "between 1 and N" in result.output
    result = runner.invoke(cli, ["predict", str(cutouts / os.listdir(cutouts)[0]), str(cutouts),
                                 "-o", str(tmp_path / "y.csv")])
    assert result.exit_code == 1 and "checkpoint" in result.output
