"""``train --ensemble N``: members trained apart, one checkpoint that runs their average."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from galcnn.checkpoint import load_checkpoint, load_model
from galcnn.data.dataset import PreparedDataset
from galcnn.inference import dataset_logits
from galcnn.models import Ensemble
from galcnn.stages.train import TrainError, train
from galcnn.stages.train.presets import PRESETS, with_preset

from helpers import tiny


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def ensemble_run(simulated, tmp_path_factory) -> str:
    run = str(tmp_path_factory.mktemp("ensemble") / "run")
    result = train(simulated, run, tiny(epochs=1, ensemble=2, seed=4))
    assert len(result.members) == 2 and result.epochs_run == 2
    return run


@pytest.mark.slow
def test_the_checkpoint_holds_every_members_best_weights(ensemble_run):
    state = load_checkpoint(ensemble_run)
    members = [load_checkpoint(os.path.join(ensemble_run, "members", k, "best.pt"))
               for k in ("1", "2")]
    assert _same_weights(state["model"], members[0]["model"])
    assert _same_weights(state["members"][0], members[1]["model"])
    assert not _same_weights(members[0]["model"], members[1]["model"])
    card = state["card"]
    assert card.training["ensemble"] == {"members": 2, "seeds": [4, 5]}
    assert [m["card"].training["options"]["seed"] for m in members] == [4, 5]
    width = load_model(os.path.join(ensemble_run, "members", "1")).embed(
        torch.zeros(1, 1, 32, 32)).shape[1]  # the reference: both members' features
    assert tuple(state["anomaly_reference"].shape[1:]) == (2 * width,)


@pytest.mark.slow
def test_the_ensemble_is_validated_and_calibrated_as_one_model(ensemble_run, simulated):
    model = load_model(ensemble_run)
    assert isinstance(model, Ensemble) and len(model.members) == 2
    logits, labels = dataset_logits(model, PreparedDataset(simulated, "val"),
                                    torch.device("cpu"))
    metrics = json.load(open(os.path.join(ensemble_run, "metrics.json")))
    assert metrics["accuracy"] == pytest.approx(float((logits.argmax(1) == labels).mean()))
    assert [m["seed"] for m in metrics["ensemble"]] == [4, 5]
    assert [m["folder"] for m in metrics["ensemble"]] == ["members/1", "members/2"]
    assert model.card.temperature == metrics["temperature"]
    for name in ("config.json", "confusion_matrix.png"):
        assert os.path.getsize(os.path.join(ensemble_run, name)) > 0


@pytest.mark.slow
def test_a_finished_ensemble_resumes_as_complete_and_is_not_overwritten_unasked(
        ensemble_run, simulated):
    result = train(simulated, ensemble_run, resume=True)
    assert result.already_complete and len(result.members) == 2
    with pytest.raises(TrainError, match="already holds a run; use --resume"):
        train(simulated, ensemble_run, tiny(epochs=1, ensemble=2))


@pytest.mark.slow
def test_a_stopped_ensemble_resumes_with_the_members_left(ensemble_run, simulated, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(ensemble_run, run)
    for name in ("best.pt", "metrics.json"):
        os.remove(os.path.join(run, name))
    shutil.rmtree(os.path.join(run, "members", "2"))  # stopped before member 2's first epoch
    first = os.path.join(run, "members", "1", "best.pt")
    kept = os.stat(first).st_mtime_ns
    result = train(simulated, run, resume=True)
    assert result.members[0].already_complete and not result.members[1].already_complete
    assert os.stat(first).st_mtime_ns == kept
    assert _same_weights(load_checkpoint(run)["members"][0],
                         load_checkpoint(ensemble_run)["members"][0])  # seed 5 again


def test_nothing_to_resume_is_said_for_an_ensemble(simulated, tmp_path):
    with pytest.raises(TrainError, match=r"members/1/last.pt not found; nothing to resume"):
        train(simulated, str(tmp_path / "run"), tiny(ensemble=2), resume=True)


def test_a_preset_sets_what_the_user_did_not():
    options = with_preset(tiny(), "gpu", given={"width"})
    assert options.width == 8 and options.ensemble == PRESETS["gpu"]["ensemble"] == 5
    assert options.epochs == 100 and options.batch_size == 128
    assert with_preset(tiny(), "cpu") == tiny()
    with pytest.raises(TrainError, match="unknown preset 'tpu'; choose one of cpu, gpu"):
        with_preset(tiny(), "tpu")


@pytest.mark.slow
def test_an_ensemble_opened_unpooled_averages_its_bare_networks(ensemble_run):
    from galcnn.runner.model import open_model

    loaded = open_model(ensemble_run, "classify", "evaluate", device="cpu", pooled=False)
    model = loaded.model
    assert isinstance(model, Ensemble) and len(model.members) == 2
    assert all(member.elements == [(0, False)] for member in model.members)
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        expected = (model.members[0].net(x) + model.members[1].net(x)) / 2
        torch.testing.assert_close(model(x), expected)
    assert "members" not in loaded.extras and "anomaly_reference" in loaded.extras
