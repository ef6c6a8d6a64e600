"""``predict``: agreement with the model, symmetry, shards, resume, bad input."""

from __future__ import annotations

import glob
import json
import shutil
import os

import numpy as np
import pytest
import torch
from astropy.io import fits

from galcnn.checkpoint import load_model
from galcnn.data.dataset import PreparedDataset
from galcnn.errors import GalcnnError
from galcnn.inference import dataset_logits
from galcnn.metrics import softmax
from galcnn.stages.predict import PredictError, PredictOptions, columns_for, predict
from galcnn.runner.table import identity_path
from galcnn.stages.prepare import PrepareOptions, prepare

from helpers import SAMPLE_DATA, csv_rows, write_fits


def test_csv_agrees_with_the_model_on_prepared_tensors(classifier, cutouts, tmp_path):
    out = tmp_path / "p.csv"
    result = predict(classifier, [str(cutouts)], str(out), PredictOptions(batch_size=5))
    assert (result.n_ok, result.n_failed, result.n_rows) == (12, 0, 12)
    rows = csv_rows(out)
    model = load_model(classifier)
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


def test_predictions_are_invariant_and_mirrors_swap_winding(classifier, tmp_path):
    """The default (pooled) beliefs of rotated copies agree, and a mirror image's spiral_cw
    belief is the original's spiral_acw; --tta only adds the spread."""
    source = sorted(glob.glob(os.path.join(SAMPLE_DATA, "simulated", "spiral_cw", "*")))[0]
    with fits.open(source) as hdul:
        image = hdul[1].data.astype(np.float32)
    folder = tmp_path / "copies"
    for k in range(4):
        write_fits(folder / f"rot{k}.fits", np.ascontiguousarray(np.rot90(image, k)))
    write_fits(folder / "mirror.fits", np.ascontiguousarray(image[:, ::-1]))
    out = tmp_path / "tta.csv"
    predict(classifier, [str(folder)], str(out), PredictOptions(spread=True))
    rows = {os.path.basename(r["file"]): r for r in csv_rows(out)}
    classes = load_model(classifier).card.classes
    beliefs = {name: np.array([float(r[f"p_{c}"]) for c in classes])
               for name, r in rows.items()}
    for k in range(1, 4):
        np.testing.assert_allclose(beliefs[f"rot{k}.fits"], beliefs["rot0.fits"], atol=1e-5)
    # a mirror image swaps the winding sense: its spiral_cw belief is the original's spiral_acw
    cw, acw = classes.index("spiral_cw"), classes.index("spiral_acw")
    swapped = beliefs["mirror.fits"].copy()
    swapped[[cw, acw]] = swapped[[acw, cw]]
    np.testing.assert_allclose(swapped, beliefs["rot0.fits"], atol=1e-5)
    # not vacuous: the two beliefs differ by several times the tolerance of the swap check
    assert abs(beliefs["rot0.fits"][cw] - beliefs["rot0.fits"][acw]) > 3e-5
    assert all(r["spread"] != "" for r in rows.values())


def test_tta_without_dropout_is_exactly_invariant(classifier, tmp_path):
    rng = np.random.default_rng(3)
    image = rng.normal(0, 1, (32, 32)).astype(np.float32)
    image[12:20, 10:22] += 30
    folder = tmp_path / "exact"
    for k in range(4):
        write_fits(folder / f"rot{k}.fits", np.ascontiguousarray(np.rot90(image, k)))
    out = tmp_path / "exact.csv"
    predict(classifier, [str(folder)], str(out), PredictOptions(spread=True))
    rows = csv_rows(out)
    first = [float(rows[0][c]) for c in rows[0] if c.startswith("p_")]
    for row in rows[1:]:
        np.testing.assert_allclose([float(row[c]) for c in row if c.startswith("p_")], first,
                                   atol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_shards_are_disjoint_and_complete(classifier, cutouts, tmp_path, n):
    seen = []
    for k in range(1, n + 1):
        out = tmp_path / f"part{k}.csv"
        try:
            predict(classifier, [str(cutouts)], str(out), shard=(k, n))
        except PredictError as exc:  # an empty part is allowed for small inputs
            assert "no input files in shard" in str(exc)
            continue
        seen.extend(r["file"] for r in csv_rows(out))
    assert len(seen) == len(set(seen)) == 12


def test_resume_after_a_kill_loses_and_repeats_nothing(classifier, cutouts, tmp_path):
    full = tmp_path / "full.csv"
    predict(classifier, [str(cutouts)], str(full), PredictOptions(batch_size=4))
    lines = open(full).read().splitlines(keepends=True)
    out = tmp_path / "killed.csv"
    # what a kill leaves: header, five complete rows and half of the sixth
    with open(f"{out}.partial", "w") as handle:
        handle.write("".join(lines[:6]) + lines[6][: len(lines[6]) // 2])
    shutil.copy(identity_path(str(full)), identity_path(str(out)))  # written before any row
    with pytest.raises(PredictError, match="use --resume"):
        predict(classifier, [str(cutouts)], str(out))
    result = predict(classifier, [str(cutouts)], str(out), resume=True)
    assert result.n_skipped_resume == 5 and result.n_ok == 7 and result.n_rows == 12
    assert not os.path.exists(f"{out}.partial")
    assert sorted(open(out).read().splitlines()) == sorted(open(full).read().splitlines())
    again = predict(classifier, [str(cutouts)], str(out), resume=True)  # a requeued job
    assert (again.n_ok, again.n_skipped_resume, again.n_rows) == (0, 12, 12)
    assert sorted(open(out).read().splitlines()) == sorted(open(full).read().splitlines())


def _other_model(classifier: str, path) -> str:
    """The same architecture with other weights: another model to predict with."""
    from galcnn.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(classifier)
    weights = {k: v + 0.01 if v.is_floating_point() else v for k, v in state["model"].items()}
    save_checkpoint(str(path), state["card"], weights)
    return str(path)


def test_resume_with_another_model_or_options_is_refused(classifier, cutouts, tmp_path):
    other = _other_model(classifier, tmp_path / "other.pt")
    out = tmp_path / "p.csv"
    predict(classifier, [str(cutouts)], str(out))
    rows = open(out).read()
    with pytest.raises(GalcnnError, match="written by another model"):
        predict(other, [str(cutouts)], str(out), resume=True)  # "already complete" before
    lines = rows.splitlines(keepends=True)
    os.rename(out, f"{out}.partial")  # as if killed after five rows
    open(f"{out}.partial", "w").write("".join(lines[:6]))
    with pytest.raises(GalcnnError, match="written by another model"):
        predict(other, [str(cutouts)], str(out), resume=True)
    with pytest.raises(GalcnnError, match=r"other options: spread False \(now True\)"):
        predict(classifier, [str(cutouts)], str(out), PredictOptions(spread=True), resume=True)
    assert open(f"{out}.partial").read() == "".join(lines[:6])  # untouched
    record = json.load(open(identity_path(str(out))))
    assert (record["device"], record["precision"]) == ("cpu", "float32")
    gpu_record = {**record, "device": "cuda", "precision": "bfloat16"}  # a GPU job's rows
    json.dump(gpu_record, open(identity_path(str(out)), "w"))
    with pytest.raises(GalcnnError, match=r"other options: device 'cuda' \(now 'cpu'\), "
                                          r"precision 'bfloat16' \(now 'float32'\)"):
        predict(classifier, [str(cutouts)], str(out), resume=True)
    json.dump(record, open(identity_path(str(out)), "w"))
    result = predict(classifier, [str(cutouts)], str(out), resume=True)
    assert result.n_skipped_resume == 5 and result.n_rows == 12
    assert sorted(open(out).read().splitlines()) == sorted(rows.splitlines())


def test_resume_with_inputs_spelled_differently_adds_no_row(classifier, cutouts, tmp_path,
                                                             monkeypatch):
    monkeypatch.chdir(cutouts.parent)
    out = tmp_path / "p.csv"
    predict(classifier, ["cutouts"], str(out))
    lines = open(out).read().splitlines(keepends=True)
    os.rename(out, f"{out}.partial")
    open(f"{out}.partial", "w").write("".join(lines[:8]))
    result = predict(classifier, ["./cutouts/", str(cutouts / "..") + "/cutouts"], str(out),
                     resume=True)
    assert (result.n_skipped_resume, result.n_ok, result.n_rows) == (7, 5, 12)
    assert len(csv_rows(str(out))) == 12


def test_constant_images_are_flagged_and_huge_values_named(classifier, cutouts, tmp_path):
    write_fits(cutouts / "zeros.fits", np.zeros((32, 32), dtype=np.float32))
    write_fits(cutouts / "flat.fits", np.full((32, 32), 7.5))
    huge = np.random.default_rng(0).normal(size=(32, 32))
    huge[3, 4] = 1e300
    write_fits(cutouts / "huge.fits", huge)
    out = tmp_path / "p.csv"
    result = predict(classifier, [str(cutouts)], str(out))
    rows = {os.path.basename(r["file"]): r for r in csv_rows(out)}
    assert rows["zeros.fits"]["status"] == "warning: constant image (every usable pixel is 0)"
    assert rows["flat.fits"]["status"] == "warning: constant image (every usable pixel is 7.5)"
    assert rows["zeros.fits"]["predicted"] != ""  # beliefs are written, but flagged
    assert rows["huge.fits"]["status"] == ("error: pixel values beyond the float32 range "
                                           "(largest |value| 1e+300); rescale the image")
    assert sorted(os.path.basename(p) for p, _ in result.warnings) == ["flat.fits",
                                                                      "zeros.fits"]
    assert sum(r["status"] == "ok" for r in rows.values()) == 12


def test_resume_with_another_shard_is_refused(classifier, cutouts, tmp_path):
    """A Slurm task resubmitted with another K must not add its rows to shard 1's (it
    duplicated inputs when the parts were gathered)."""
    out = tmp_path / "p.csv"
    predict(classifier, [str(cutouts)], str(out), shard=(1, 2))
    lines = open(out).read().splitlines(keepends=True)
    os.rename(out, f"{out}.partial")  # as if killed after two rows
    open(f"{out}.partial", "w").write("".join(lines[:3]))
    with pytest.raises(GalcnnError, match=r"other options: shard '1/2' \(now '2/2'\)"):
        predict(classifier, [str(cutouts)], str(out), shard=(2, 2), resume=True)
    assert open(f"{out}.partial").read() == "".join(lines[:3])
    result = predict(classifier, [str(cutouts)], str(out), shard=(1, 2), resume=True)
    assert result.n_skipped_resume == 2 and result.n_rows == len(lines) - 1
