"""The training loop: run directory, checkpoints, exact resume, DDP."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from galcnn.checkpoint import load_checkpoint, load_model
from galcnn.data.dataset import PreparedDataset
from galcnn.inference import dataset_logits, refresh_batch_norm
from galcnn.interrupt import Interrupted, StopRequest
from galcnn.stages.prepare import PrepareOptions, prepare
from galcnn.stages.train import TrainError, TrainHooks, train

from helpers import SAMPLE_DATA, tiny


def test_run_directory_is_complete(simulated, tmp_path):
    run = str(tmp_path / "run")
    result = train(simulated, run, tiny())
    assert result.epochs_run == 2 and result.classes == ["edge_on", "elliptical", "spiral_acw",
                                                         "spiral_cw"]
    for name in ("best.pt", "last.pt", "config.json", "metrics.csv", "metrics.json",
                 "learning_curves.png", "confusion_matrix.png"):
        assert os.path.getsize(os.path.join(run, name)) > 0, name
    with open(os.path.join(run, "metrics.csv")) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert 0 <= float(rows[-1]["val_accuracy"]) <= 1 and float(rows[-1]["images_per_s"]) > 0
    metrics = json.load(open(os.path.join(run, "metrics.json")))
    assert metrics["n"] == 32 and len(metrics["confusion_matrix"]) == 4
    assert sum(map(sum, metrics["confusion_matrix"])) == 32
    assert set(metrics["per_class"]) == set(result.classes)
    assert metrics["temperature"] > 0 and 0 <= metrics["ece_after"] <= 1
    card = load_checkpoint(run)["card"]
    assert card.symmetry == "dihedral" and card.mirror_pairs == [("spiral_cw", "spiral_acw")]
    assert card.preprocess.size == (32, 32) and card.preprocess.n_bands == 1
    assert card.preprocess.stretch.name == "peak" and card.temperature == metrics["temperature"]
    assert len(card.elements) == 8 and card.mirror_swap == [0, 1, 3, 2]
    config = json.load(open(os.path.join(run, "config.json")))
    assert config["options"]["epochs"] == 2 and config["device"] == "cpu"
    assert config["precision"] == "float32" and config["launcher"] is None
    assert (card.training["device"], card.training["precision"]) == ("cpu", "float32")


def test_checkpoint_rebuilds_the_same_model(simulated, tmp_path):
    run = str(tmp_path / "run")
    train(simulated, run, tiny(epochs=1))
    model = load_model(run)
    data = PreparedDataset(simulated, "val")
    logits, labels = dataset_logits(model, data, torch.device("cpu"))
    again = load_model(os.path.join(run, "best.pt"))
    logits2, _ = dataset_logits(again, data, torch.device("cpu"))
    np.testing.assert_array_equal(logits, logits2)
    assert logits.shape == (32, 4) and np.isfinite(logits).all()


def test_an_invariant_network_is_never_pooled_and_keeps_the_winding_sense(simulated, tmp_path):
    """gcnn holds the dihedral group itself: the card pools over nothing, and the network
    is given the mirror-pair swap that training applies to reflected labels."""
    run = str(tmp_path / "run")
    train(simulated, run, tiny(arch="gcnn", epochs=1))
    model = load_model(run)
    card = model.card
    assert card.symmetry == "dihedral" and card.elements == [(0, False)]
    assert card.model_args["mirror_swap"] == [0, 1, 3, 2]
    x = torch.from_numpy(np.stack([PreparedDataset(simulated, "val")[i][0] for i in range(4)]))
    with torch.no_grad():
        torch.testing.assert_close(model(torch.flip(x, dims=(-1,))), model(x)[:, [0, 1, 3, 2]],
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("ema_epochs", [0.0, 0.5])
def test_resume_after_a_kill_equals_an_uninterrupted_run(simulated, tmp_path, ema_epochs):
    """Also with a moving average of the weights: it is what best.pt and last.pt keep, and
    last.pt carries the trained weights and the average's state for --resume."""
    options = tiny(epochs=3, patience=99, ema_epochs=ema_epochs)
    whole = str(tmp_path / "whole")
    train(simulated, whole, options)

    class Killed(Exception):
        pass

    def kill_after_epoch_2(row):
        if row["epoch"] == 2:
            raise Killed

    broken = str(tmp_path / "broken")
    with pytest.raises(Killed):
        train(simulated, broken, options, hooks=TrainHooks(on_epoch_end=kill_after_epoch_2))
    assert load_checkpoint(os.path.join(broken, "last.pt"))["trainer"]["epoch"] == 1
    train(simulated, broken, options, resume=True)
    a = load_checkpoint(os.path.join(whole, "last.pt"))
    b = load_checkpoint(os.path.join(broken, "last.pt"))
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert [r["val_loss"] for r in a["trainer"]["history"]] == \
        [r["val_loss"] for r in b["trainer"]["history"]]
    if ema_epochs:
        name = next(k for k in a["model"] if k.endswith("weight"))
        assert not torch.equal(a["model"][name], a["trained"][name])
        assert torch.equal(a["trained"][name], b["trained"][name])
        assert int(a["ema"]["n_averaged"]) == 3 * 5 == int(b["ema"]["n_averaged"])
    else:
        assert "trained" not in a and "ema" not in a


def test_a_stop_request_saves_mid_epoch_and_resumes_at_that_batch(simulated, tmp_path):
    options = tiny(epochs=2, patience=99, batch_size=16)
    whole = str(tmp_path / "whole")
    train(simulated, whole, options)
    stop = StopRequest()

    def progress(epoch, n_images):
        assert n_images == 80  # 5 whole batches of 16 from 88 training samples
        seen = [0]

        def advance(n):
            seen[0] += n
            if epoch == 1 and seen[0] == 48:
                stop.signum = signal.SIGTERM  # as the signal handler would

        return advance

    stopped = str(tmp_path / "stopped")
    with pytest.raises(Interrupted) as caught:
        train(simulated, stopped, options, hooks=TrainHooks(progress=progress, stop=stop))
    assert caught.value.signum == signal.SIGTERM
    assert caught.value.saved.endswith("last.pt holds epoch 2 up to batch 3/5")
    state = load_checkpoint(os.path.join(stopped, "last.pt"))
    assert state["trainer"]["epoch"] == 0 and state["trainer"]["partial"]["batches"] == 3
    train(simulated, stopped, options, resume=True)
    a = load_checkpoint(os.path.join(whole, "last.pt"))
    b = load_checkpoint(os.path.join(stopped, "last.pt"))
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert "partial" not in b["trainer"]
    for column in ("train_loss", "train_accuracy", "val_loss"):
        assert [r[column] for r in a["trainer"]["history"]] == \
            [r[column] for r in b["trainer"]["history"]], column


def _stopped_after_one_epoch(simulated, run: str, options) -> None:
    class Killed(Exception):
        pass

    def kill(row):
        raise Killed

    with pytest.raises(Killed):
        train(simulated, run, options, hooks=TrainHooks(on_epoch_end=kill))


def test_resume_reads_the_checkpoint_onto_the_cpu_whatever_the_device(simulated, tmp_path,
                                                                       monkeypatch):
    """On a GPU, reading last.pt onto the device put the RNG states there (set_rng_state
    then raised TypeError) and the optimizer's step counters too. The run below says it is
    on a GPU; resuming must not depend on it (reading onto CUDA fails on this machine)."""
    import galcnn.stages.train.loop as loop

    options = tiny(epochs=2, patience=99)
    run = str(tmp_path / "run")
    _stopped_after_one_epoch(simulated, run, options)
    resumed = loop._Run(simulated, run, options, loop.Distributed(), torch.device("cpu"), None,
                        fine_tune=False)
    resumed.device = torch.device("cuda", 0)
    resumed.resume(os.path.join(run, "last.pt"))
    saved = load_checkpoint(os.path.join(run, "last.pt"))
    assert resumed.trainer["epoch"] == 0 and resumed.trainer["world_size"] == 1
    assert torch.equal(torch.get_rng_state(), saved["rng"]["torch"])
    steps = [s["step"] for s in resumed.optimizer.state.values()]
    assert steps and all(step.device.type == "cpu" and int(step) == resumed.steps_per_epoch == 5
                         for step in steps)


def test_resume_in_float16_of_a_run_saved_without_loss_scaling(simulated, tmp_path, caplog):
    """A CPU or bf16 run saves an empty GradScaler state; loading it into an fp16 run's
    scaler raised RuntimeError. The scale starts afresh, and the log says so."""
    import galcnn.stages.train.loop as loop

    options = tiny(epochs=2, patience=99)
    run = str(tmp_path / "run")
    _stopped_after_one_epoch(simulated, run, options)
    assert load_checkpoint(os.path.join(run, "last.pt"))["scaler"] == {}
    resumed = loop._Run(simulated, run, options, loop.Distributed(), torch.device("cpu"), None,
                        fine_tune=False)
    resumed.scaler = torch.amp.GradScaler("cpu", enabled=True)  # as float16 on a V100
    with caplog.at_level("WARNING", logger="galcnn"):
        resumed.resume(os.path.join(run, "last.pt"))
    assert "loss scale starts afresh" in caplog.text
    assert resumed.scaler.get_scale() == 65536.0


def test_a_stop_already_requested_saves_after_the_first_batch(simulated, tmp_path):
    stop = StopRequest()
    stop.signum = signal.SIGINT  # Ctrl-C while the data was being prepared
    run = str(tmp_path / "run")
    with pytest.raises(Interrupted, match="Ctrl-C"):
        train(simulated, run, tiny(epochs=2), hooks=TrainHooks(stop=stop))
    partial = load_checkpoint(os.path.join(run, "last.pt"))["trainer"]["partial"]
    assert (partial["epoch"], partial["batches"], partial["seen"]) == (0, 1, 16)


def test_existing_run_is_not_overwritten_by_accident(simulated, tmp_path):
    run = str(tmp_path / "run")
    train(simulated, run, tiny(epochs=1))
    with pytest.raises(TrainError, match="already holds a run; use --resume"):
        train(simulated, run, tiny(epochs=1))
    with pytest.raises(TrainError, match="nothing to resume"):
        train(simulated, str(tmp_path / "new"), tiny(), resume=True)
    train(simulated, run, tiny(epochs=1), overwrite=True)


@pytest.mark.slow
def test_torchrun_two_processes_train_one_model(tmp_path):
    run = str(tmp_path / "run")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "galcnn", "-q", "train", "--data",
               os.path.join(SAMPLE_DATA, "simulated"), "--out", run, "--epochs", "2",
               "--width", "8", "--size", "24", "--batch-size", "16", "--classes",
               "elliptical,edge_on"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.load(open(os.path.join(run, "config.json")))
    assert config["world_size"] == 2 and config["device"] == "cpu"
    state = load_checkpoint(os.path.join(run, "last.pt"))
    assert state["trainer"]["epoch"] == 1 and len(state["trainer"]["history"]) == 2
    assert state["card"].classes == ["elliptical", "edge_on"]
    assert os.path.isfile(os.path.join(run, "metrics.json"))
    leftovers = [n for n in os.listdir(run) if ".tmp" in n]
    assert leftovers == []


def test_a_failed_start_leaves_nothing_behind(simulated, tmp_path):
    one_class = tmp_path / "one"
    prepare([os.path.join(SAMPLE_DATA, "simulated")], str(one_class), classes=["elliptical"],
            workers=1)
    with pytest.raises(TrainError, match="at least 2 classes"):
        train(str(one_class), str(tmp_path / "run"), tiny())
    with pytest.raises(TrainError, match="nothing to resume"):
        train(simulated, str(tmp_path / "resumed"), tiny(), resume=True)
    raw = tmp_path / "raw"
    (raw / "a").mkdir(parents=True)
    (raw / "a" / "x.fits").write_text("not FITS")
    (raw / "b").mkdir()
    (raw / "b" / "y.fits").write_text("not FITS")
    with pytest.raises(TrainError, match="preparing"):
        train(str(raw), str(tmp_path / "from-raw"), tiny(), prepare=PrepareOptions(workers=1))
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(TrainError):
        train(str(raw), str(kept), tiny(), prepare=PrepareOptions(workers=1))
    assert sorted(os.listdir(tmp_path)) == ["kept", "one", "raw"]
    assert os.listdir(kept) == ["notes.txt"]


@pytest.mark.gpu
def test_training_steps_on_the_gpu_never_wait_for_it(simulated, tmp_path):
    """torch's sync debug mode turns every wait for the device into an error: it is on from
    the end of the first batch to the end of the last (the epoch's end reads its sums, and
    validation its results, once)."""
    def progress(epoch, n_images):
        seen = [0]

        def advance(n):
            seen[0] += n
            torch.cuda.set_sync_debug_mode("error" if 0 < seen[0] < n_images else "default")

        return advance

    try:
        result = train(simulated, str(tmp_path / "run"), tiny(device="cuda", epochs=2),
                       hooks=TrainHooks(progress=progress))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert result.epochs_run == 2
    config = json.load(open(os.path.join(tmp_path, "run", "config.json")))
    assert config["device"].startswith("cuda") and config["precision"] in ("bfloat16",
                                                                             "float16")


@pytest.mark.gpu
def test_resume_on_the_gpu_continues_the_run(simulated, tmp_path):
    """On a GPU the resumed run is the same run (weights, optimizer, order, draws), not the
    same bits: its epochs go on where they stopped, near the uninterrupted run's."""
    options = tiny(epochs=3, patience=99, device="cuda")
    whole = str(tmp_path / "whole")
    train(simulated, whole, options)
    broken = str(tmp_path / "broken")
    _stopped_after_one_epoch(simulated, broken, options)
    result = train(simulated, broken, options, resume=True)
    state = load_checkpoint(os.path.join(broken, "last.pt"))
    reference = load_checkpoint(os.path.join(whole, "last.pt"))
    assert result.epochs_run == 3 and len(state["trainer"]["history"]) == 3
    steps = {int(s["step"]) for s in state["optimizer"]["state"].values()}
    assert steps == {int(s["step"]) for s in reference["optimizer"]["state"].values()}
    for a, b in zip(state["trainer"]["history"], reference["trainer"]["history"]):
        assert abs(a["train_loss"] - b["train_loss"]) < 0.1, (a, b)


def test_a_set_whose_mirrored_copies_keep_the_old_label_is_refused(cutouts, tmp_path):
    """A set prepared before the mirror pairs were recorded holds reflected spiral_cw copies
    labelled spiral_cw, while training swaps the labels of its own reflections."""
    from galcnn.data.recipe import Preprocess

    out = str(tmp_path / "prepared")
    names = sorted(os.listdir(cutouts))
    (cutouts / "labels.csv").write_text("file,label\n" + "".join(
        f"{name},{name.split('.')[0].rsplit('_', 1)[0]}\n" for name in names))
    prepare([str(cutouts)], out, workers=1, options=PrepareOptions(
        Preprocess(size=(32, 32)), augment="dihedral", copies=1, val_fraction=0.25))
    path = os.path.join(out, "metadata.json")
    meta = json.load(open(path))
    del meta["mirror_pairs"]
    json.dump(meta, open(path, "w"))
    with pytest.raises(TrainError, match="keep the label of classes whose mirror image is "
                                         "another class \\(spiral_cw/spiral_acw\\): it was "
                                         "prepared by an older galcnn; prepare it again"):
        train(out, str(tmp_path / "run"), tiny(epochs=1))
    meta["mirror_pairs"] = [["spiral_cw", "spiral_acw"]]
    json.dump(meta, open(path, "w"))
    with pytest.raises(TrainError, match="--mirror-pairs differs from the pairs"):
        train(out, str(tmp_path / "run"), tiny(epochs=1, mirror_pairs=[]))
    assert train(out, str(tmp_path / "run"), tiny(epochs=1)).epochs_run == 1


@pytest.mark.slow
def test_batch_norm_statistics_measured_on_augmented_inputs_differ_and_repeat(
        simulated, tmp_path):
    """--refresh-bn-augmented measures the statistics on inputs augmented as in training
    (not the plain ones), with draws of its own: two runs save the same statistics."""
    train_set = PreparedDataset(simulated, "train")
    saved = []
    for name in ("a", "b"):
        run = str(tmp_path / name)
        train(simulated, run, tiny(epochs=1, refresh_bn_augmented=True))
        net = load_model(run).net
        saved.append(next(m for m in net.modules()
                          if isinstance(m, torch.nn.BatchNorm2d)).running_var.clone())
    torch.testing.assert_close(saved[0], saved[1], rtol=0, atol=0)
    refresh_batch_norm(net, train_set, torch.device("cpu"))
    plain = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)).running_var
    assert not torch.allclose(plain, saved[1], rtol=1e-3)


def test_the_saved_model_holds_batch_norm_statistics_measured_on_the_training_split(
        simulated, tmp_path):
    """Validation (and so the saved model) uses statistics measured afresh on the training
    split, not training's running averages; --running-bn keeps those."""
    def first_norm(run):
        net = load_model(run).net
        return next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)), net

    train_set = PreparedDataset(simulated, "train")
    for refresh in (True, False):
        run = str(tmp_path / f"run-{refresh}")
        train(simulated, run, tiny(epochs=1, refresh_bn=refresh))
        config = json.load(open(os.path.join(run, "config.json")))
        assert config["options"]["refresh_bn"] is refresh
        saved, net = first_norm(run)
        kept = saved.running_mean.clone()
        refresh_batch_norm(net, train_set, torch.device("cpu"))
        assert torch.allclose(saved.running_mean, kept, atol=1e-5) is refresh
