"""Checkpoints: weights-only loading, one-line refusals, galcnn 0.1 checkpoints."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from galcnn.card import ModelCard
from galcnn.checkpoint import (CheckpointError, file_checksum, load_checkpoint, load_model,
                               resolve_checkpoint, save_checkpoint)
from galcnn.data.recipe import Preprocess
from galcnn.models import GroupPooled, create_model

from test_card import CLASSIFIER_0_1


def _card() -> ModelCard:
    return ModelCard(task="classify", classes=["a", "b"], model="cnn",
                     model_args={"n_bands": 1, "n_classes": 2, "size": [16, 16], "width": 8},
                     preprocess=Preprocess(bands=("0",), size=(16, 16)))


def test_save_load_and_run_directories(tmp_path):
    net = create_model("cnn", n_bands=1, n_classes=2, size=(16, 16), width=8)
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(str(run / "last.pt"), _card(), net.state_dict(), trainer={"epoch": 0})
    assert resolve_checkpoint(str(run)) == str(run / "last.pt")
    state = load_checkpoint(str(run))
    assert state["card"] == _card() and state["trainer"] == {"epoch": 0}
    model = load_model(str(run))
    assert model.card == _card() and not model.training
    assert len(file_checksum(str(run))) == 64 and os.listdir(run) == ["last.pt"]
    with pytest.raises(CheckpointError, match="holds no best.pt or last.pt"):
        resolve_checkpoint(str(tmp_path))


def test_a_galcnn_0_1_checkpoint_loads_and_runs(tmp_path):
    torch.manual_seed(0)
    net = create_model("resnet", n_bands=1, n_classes=3, size=(24, 24), width=8, dropout=0.3)
    path = str(tmp_path / "old.pt")
    torch.save({"format": "galcnn-checkpoint", "format_version": 1, "card": CLASSIFIER_0_1,
                "model": net.state_dict()}, path)
    model = load_model(path)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 1, 24, 24)).astype("float32"))
    pooled = GroupPooled(net.eval(), [(k, f) for f in (False, True) for k in range(4)], [0, 2, 1])
    with torch.no_grad():
        torch.testing.assert_close(model(x), pooled(x))
    assert model.card.symmetry == "dihedral" and model.card.temperature == 1.3


def test_files_that_are_not_checkpoints(tmp_path):
    text = tmp_path / "model.pt"
    text.write_text("not a checkpoint")
    net = create_model("cnn", n_bands=1, n_classes=2, size=(16, 16), width=8)
    save_checkpoint(str(tmp_path / "good.pt"), _card(), net.state_dict())
    content = bytearray((tmp_path / "good.pt").read_bytes())
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(bytes(content[: len(content) // 2]))
    for path, message in ((text, "(not a file written by torch.save, or a damaged one)"),
                          (truncated, "(not a file written by torch.save, or a damaged one)")):
        with pytest.raises(CheckpointError) as raised:
            load_checkpoint(str(path))
        assert str(raised.value) == f"{path}: not a galcnn checkpoint {message}"


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_never_run(tmp_path, capsys):
    path = str(tmp_path / "evil.pt")
    torch.save({"format": "galcnn-checkpoint", "card": {}, "x": _Payload()}, path)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path)
    assert str(raised.value) == (f"{path}: not a galcnn checkpoint (it asks for the Python "
                                 "object print, which is never loaded because it could run code)")
    assert "must never run" not in capsys.readouterr().out


def test_damaged_galcnn_checkpoints_are_named(tmp_path):
    other = str(tmp_path / "other.pt")
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="a torch file without a galcnn model card"):
        load_checkpoint(other)
    no_card = str(tmp_path / "nocard.pt")
    torch.save({"format": "galcnn-checkpoint", "format_version": 2, "card": {"task": "x"},
                "model": {}}, no_card)
    with pytest.raises(CheckpointError, match="its model card is incomplete"):
        load_checkpoint(no_card)
    wrong = str(tmp_path / "wrong.pt")
    other_net = create_model("cnn", n_bands=3, n_classes=2, size=(16, 16), width=8)
    save_checkpoint(wrong, _card(), other_net.state_dict())
    with pytest.raises(CheckpointError, match="weights do not fit its card"):
        load_model(wrong)


def test_a_card_describing_a_giant_network_is_refused_before_building_it(tmp_path):
    """A 253 KB checkpoint whose card says width=3000 reached 6.3 GB and 55 s before it
    failed: the card is checked against the weights on the meta device first."""
    import resource

    net = create_model("cnn", n_bands=1, n_classes=2, size=(16, 16), width=8)
    card = _card()
    card.model_args = {**card.model_args, "width": 3000}
    path = str(tmp_path / "wide.pt")
    save_checkpoint(path, card, net.state_dict())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError) as raised:
        load_model(path)
    assert str(raised.value) == (f"{path}: damaged galcnn checkpoint (weights do not fit its "
                                 "card: features.0.0.weight is (8, 1, 3, 3), the card's cnn "
                                 "needs (3000, 1, 3, 3))")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 100


def test_a_compressed_record_is_refused_unread(tmp_path):
    """A 2.1 MB checkpoint with a deflated record inflated to 2.25 GB before its refusal."""
    import zipfile

    net = create_model("cnn", n_bands=1, n_classes=2, size=(16, 16), width=8)
    good = str(tmp_path / "good.pt")
    save_checkpoint(good, _card(), net.state_dict())
    packed = str(tmp_path / "packed.pt")
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(packed, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info.filename),
                            compress_type=zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(packed)
    assert str(raised.value).startswith(f"{packed}: not a galcnn checkpoint (it holds "
                                        "compressed records, which torch.save never writes: ")


def test_an_ensemble_checkpoint_holds_every_member_and_old_readers_refuse_it(tmp_path):
    from galcnn.models import Ensemble

    nets = []
    for seed in range(3):
        torch.manual_seed(seed)
        nets.append(create_model("cnn", n_bands=1, n_classes=2, size=(16, 16), width=8))
    path = str(tmp_path / "best.pt")
    save_checkpoint(path, _card(), nets[0].state_dict(),
                    members=[net.state_dict() for net in nets[1:]])
    model = load_model(path)
    assert isinstance(model, Ensemble) and len(model.members) == 3 and model.card == _card()
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        expected = torch.stack([net.eval()(x) for net in nets]).mean(0)
        torch.testing.assert_close(model(x), expected)
    assert torch.load(path, weights_only=True)["format_version"] == 3  # galcnn <= 0.x: refused
    single = str(tmp_path / "single.pt")
    save_checkpoint(single, _card(), nets[0].state_dict())
    assert torch.load(single, weights_only=True)["format_version"] == 2
    assert isinstance(load_model(single), GroupPooled) and not isinstance(load_model(single),
                                                                          Ensemble)


def test_an_ensemble_member_that_does_not_fit_the_card_is_named(tmp_path):
    net = create_model("cnn", n_bands=1, n_classes=2, size=(16, 16), width=8)
    other = create_model("cnn", n_bands=3, n_classes=2, size=(16, 16), width=8)
    path = str(tmp_path / "bad.pt")
    save_checkpoint(path, _card(), net.state_dict(), members=[other.state_dict()])
    with pytest.raises(CheckpointError, match="weights do not fit its card"):
        load_model(path)
    torch.save({"format": "galcnn-checkpoint", "format_version": 3,
                "card": _card().to_dict(), "model": net.state_dict(), "members": "x"},
               str(tmp_path / "odd.pt"))
    with pytest.raises(CheckpointError, match="ensemble's members are not weights"):
        load_model(str(tmp_path / "odd.pt"))
