"""Prepare the real shared survey cutouts (skipped when ../shared/data is absent)."""

import csv
import json
import os

import numpy as np
import pytest

from galcnn.data.dataset import PreparedDataset
from galcnn.data.recipe import Preprocess
from galcnn.stages.prepare import PrepareOptions, prepare

pytestmark = pytest.mark.slow


def test_gz1_reads_without_options(shared_data, tmp_path):
    out = str(tmp_path / "gz1")
    result = prepare([os.path.join(shared_data, "gz1")], out)
    assert not result.failures
    meta = json.load(open(os.path.join(out, "metadata.json")))
    with open(os.path.join(shared_data, "gz1", "labels.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = {}
    for row in rows:
        expected[row["label"]] = expected.get(row["label"], 0) + 1
    totals = {c: meta["class_counts"]["train"][c] + meta["class_counts"]["val"][c]
              for c in meta["classes"]}
    assert totals == expected
    assert meta["preprocess"]["bands"] == ["g", "r", "i"]
    assert meta["preprocess"]["size"] == [64, 64]
    dataset = PreparedDataset(out, split="val")
    image, label = dataset[0]
    assert image.shape == (3, 64, 64) and np.isfinite(image).all()
    assert 0 <= label < 6


def test_mirabest_confident_fr_classes(shared_data, tmp_path):
    out = str(tmp_path / "mb")
    result = prepare([os.path.join(shared_data, "mirabest")], out, where={"confident": "1"},
                     classes=["FRI", "FRII"], options=PrepareOptions(Preprocess(size=(128, 128))))
    assert not result.failures and result.classes == ["FRI", "FRII"]
    assert result.dropped_classes.get("hybrid", 0) > 0
    with open(os.path.join(shared_data, "mirabest", "labels.csv"), newline="") as handle:
        catalogue = {os.path.basename(r["file"]): r for r in csv.DictReader(handle)}
    dataset = PreparedDataset(out)
    assert {r["hdu"] for r in dataset.rows} == {1}
    for row in dataset.rows[:50]:
        entry = catalogue[os.path.basename(row["file"])]
        assert entry["confident"] == "1" and entry["label"] == row["label"]
        # the cutout centre from its WCS is the catalogue position (to a pixel, 1.8")
        assert row["ra"] == pytest.approx(float(entry["ra"]), abs=0.002)
        assert row["dec"] == pytest.approx(float(entry["dec"]), abs=0.002)
    assert dataset.image(0).shape == (1, 128, 128)
