"""``embed``: a FITS table with a vector column, a row per input, shared streaming."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table

from galcnn.anomaly import knn_scores
from galcnn.checkpoint import load_checkpoint, load_model, save_checkpoint
from galcnn.data.fitsio import read_image
from galcnn.data.inputs import collect_sources
from galcnn.data.reader import ReadTask, read_sample
from galcnn.stages.embed import EmbedError, embed

from helpers import write_fits


def test_vectors_are_the_pooled_models_and_turn_with_nothing(classifier, cutouts, tmp_path):
    first = sorted(glob.glob(str(cutouts / "*.fz")))[0]
    image = read_image(first)
    write_fits(cutouts / "turned.fits", np.rot90(image.data[0], 1).copy())
    (cutouts / "empty.fits").write_bytes(b"")
    out = str(tmp_path / "embeddings.fits")
    result = embed(classifier, [str(cutouts)], out)
    assert (result.n_ok, result.n_failed, result.n_rows) == (13, 1, 14)
    table = Table.read(out, mask_invalid=False)
    assert table.colnames == ["id", "file", "hdu", "ra", "dec", "embedding", "status"]
    width = fits.getheader(out)["EMBDIM"]
    assert table["embedding"].shape == (14, width) and width > 8
    by_id = {row["id"]: row for row in table}
    assert by_id["empty"]["status"].startswith("error: ") and \
        np.isnan(by_id["empty"]["embedding"]).all()
    original = by_id[table["id"][np.flatnonzero(table["file"] == first)[0]]]["embedding"]
    np.testing.assert_allclose(by_id["turned"]["embedding"], original, rtol=1e-4, atol=1e-5)
    model = load_model(classifier)
    source = collect_sources([first])[0][0]
    x = torch.from_numpy(read_sample(ReadTask(0, source), model.card.preprocess).image[None])
    with torch.no_grad():
        np.testing.assert_allclose(original, model.embed(x)[0].numpy(), rtol=1e-4, atol=1e-5)


def test_shards_split_the_inputs_and_resume_keeps_a_complete_table(classifier, cutouts,
                                                                    tmp_path):
    parts = [str(tmp_path / f"part{k}.fits") for k in (1, 2)]
    for k, part in enumerate(parts, start=1):
        embed(classifier, [str(cutouts)], part, shard=(k, 2))
    files = [set(Table.read(p)["file"]) for p in parts]
    assert not files[0] & files[1] and len(files[0] | files[1]) == 12
    again = embed(classifier, [str(cutouts)], parts[0], shard=(1, 2), resume=True)
    assert again.n_skipped_resume == len(files[0]) and again.n_ok == 0


def test_anomaly_scores_are_distances_to_the_training_reference(classifier, cutouts, tmp_path):
    out = str(tmp_path / "scored.fits")
    embed(classifier, [str(cutouts)], out, anomaly=True)
    table = Table.read(out)
    assert table.colnames[-3:] == ["anomaly", "anomaly_percentile", "status"]
    state = load_checkpoint(classifier)
    reference, summary = state["anomaly_reference"].numpy(), state["card"].anomaly
    assert len(reference) == summary["n_reference"] == state["card"].training["data"]["n_train"]
    expected = knn_scores(reference, np.asarray(table["embedding"]), summary["k"])
    np.testing.assert_allclose(table["anomaly"], expected, rtol=1e-4, atol=1e-6)
    assert ((table["anomaly_percentile"] >= 0) & (table["anomaly_percentile"] <= 100)).all()
    assert fits.getheader(out)["ANOMREF"] == len(reference)


def test_a_model_without_a_reference_cannot_score_anomalies(classifier, cutouts, tmp_path):
    state = load_checkpoint(classifier)
    old = str(tmp_path / "old.pt")
    save_checkpoint(old, state["card"].with_updates(anomaly={}), state["model"])
    with pytest.raises(EmbedError, match="keeps no training embeddings to score anomalies"):
        embed(old, [str(cutouts)], str(tmp_path / "x.fits"), anomaly=True)
    assert not os.path.exists(tmp_path / "x.fits")
