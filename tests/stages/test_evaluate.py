"""``evaluate``: the validated model's metrics on prepared or raw labelled data."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from galcnn.data.dataset import PreparedDataset
from galcnn.data.recipe import Preprocess
from galcnn.data.stretch import Stretch
from galcnn.stages.evaluate import EvaluateError, evaluate
from galcnn.stages.prepare import PrepareOptions, prepare

from helpers import SAMPLE_DATA, write_fits


def test_a_prepared_split_is_scored_without_augmented_copies(classifier, simulated):
    result = evaluate(classifier, simulated, split="val")
    metrics = result.metrics
    n_val = len(PreparedDataset(simulated, "val"))
    assert metrics["n"] == n_val == len(result.files) and metrics["split"] == "val"
    assert np.array(metrics["confusion_matrix"]).sum() == n_val
    np.testing.assert_allclose(result.beliefs.sum(1), 1.0, atol=1e-5)
    assert metrics["tta"] and 0 <= metrics["ece"] <= 1 and metrics["n_unknown_class"] == 0
    bare = evaluate(classifier, simulated, split="val", tta=False)
    assert not bare.metrics["tta"] and not np.allclose(bare.beliefs, result.beliefs)


def test_a_set_prepared_with_another_recipe_is_refused(classifier, tmp_path):
    other = str(tmp_path / "linear")
    prepare([os.path.join(SAMPLE_DATA, "simulated")], other, workers=1,
            options=PrepareOptions(Preprocess(size=(32, 32), stretch=Stretch("linear"))))
    with pytest.raises(EvaluateError) as raised:
        evaluate(classifier, other)
    assert "prepared differently from the model's inputs (stretch linear instead of peak)" \
        in str(raised.value)


def test_raw_cutouts_are_read_with_the_card_and_unknown_classes_left_out(classifier, tmp_path):
    raw = tmp_path / "raw"
    for kind in ("elliptical", "edge_on"):
        shutil.copytree(os.path.join(SAMPLE_DATA, "simulated", kind), raw / kind)
    shutil.copytree(os.path.join(SAMPLE_DATA, "simulated", "edge_on"), raw / "lenticular")
    (raw / "elliptical" / "broken.fits").write_bytes(b"")
    result = evaluate(classifier, str(raw), workers=1)
    assert result.metrics["n"] == 60 and result.metrics["n_unknown_class"] == 30
    assert result.failures == [(str(raw / "elliptical" / "broken.fits"), "empty file (0 bytes)")]
    only = evaluate(classifier, str(raw), workers=1, classes=["edge_on"])
    assert only.metrics["n"] == 30 and only.metrics["per_class"]["edge_on"]["support"] == 30


def test_a_unet_or_unlabelled_data_cannot_be_evaluated(unet, classifier, tmp_path):
    with pytest.raises(EvaluateError, match="a segment model; evaluate needs a classifier"):
        evaluate(unet, os.path.join(SAMPLE_DATA, "simulated"))
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(os.path.join(SAMPLE_DATA, "simulated", "edge_on", "edge_on_000.fits.fz"), flat)
    with pytest.raises(EvaluateError, match="no labels"):
        evaluate(classifier, str(flat))


def test_raw_cutouts_of_other_bands_are_named_not_a_folder(classifier, tmp_path):
    raw = tmp_path / "raw"
    for kind in ("edge_on", "elliptical"):
        for i in range(3):
            write_fits(raw / kind / f"{i}.fits", np.ones((3, 32, 32), dtype=np.float32))
    with pytest.raises(EvaluateError) as raised:
        evaluate(classifier, str(raw), workers=1)
    assert str(raised.value) == (f"{raw}: 6 labelled cutout(s), every one has 3 band(s), the "
                                 f"model needs 1; e.g. {raw / 'edge_on' / '0.fits'}")


def test_a_misspelled_class_is_refused_not_scored_perfectly(classifier):
    """--classes eliptical,spiral_cw scored the 30 spiral_cw cutouts alone: accuracy 1.000
    and macro-F1 1.000, exit 0. prepare refuses the same typo; so does evaluate."""
    with pytest.raises(EvaluateError) as raised:
        evaluate(classifier, os.path.join(SAMPLE_DATA, "simulated"), workers=1,
                 classes=["eliptical", "spiral_cw"])
    assert str(raised.value) == ("class(es) eliptical not among the model's classes (edge_on, "
                                 "elliptical, spiral_acw, spiral_cw)")
