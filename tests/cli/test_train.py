"""``galcnn train`` and ``galcnn evaluate`` on the command line."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from click.testing import CliRunner

from galcnn.checkpoint import load_checkpoint
from galcnn.cli import cli

from helpers import SAMPLE_DATA, tiny


def test_raw_cutouts_are_prepared_into_the_run(tmp_path):
    raw = tmp_path / "cutouts"
    for kind in ("elliptical", "edge_on"):
        shutil.copytree(os.path.join(SAMPLE_DATA, "simulated", kind), raw / kind)
    run = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--data", str(raw), "--out", str(run), "--epochs", "2",
                                 "--width", "8", "--size", "32", "--batch-size", "16"])
    assert result.exit_code == 0, result.output
    assert "Validation split, best epoch" in result.output and "macro-F1" in result.output
    meta = json.load(open(run / "prepared" / "metadata.json"))
    assert meta["preprocess"]["size"] == [32, 32] and meta["classes"] == ["edge_on", "elliptical"]
    card = load_checkpoint(str(run))["card"]
    assert card.symmetry == "rotate" and card.preprocess.size == (32, 32)


def test_cli_usage_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                                 "--mirror-pairs", "spiral_cw"])
    assert result.exit_code == 2 and "write A:B" in result.output
    result = runner.invoke(cli, ["train", "--data", str(tmp_path / "missing"), "--out", "r"])
    assert result.exit_code == 2


TINY = ["--width", "8", "--size", "32", "--batch-size", "16", "--warmup-epochs", "0.5"]


@pytest.mark.slow
def test_resume_continues_the_run_with_its_own_options(tmp_path):
    """--resume of a finished run without its --epochs trained on to the default 50 and
    replaced best.pt; it now continues the run it resumes, and says what a changed option
    changes."""
    run = tmp_path / "run"
    args = ["train", "--data", os.path.join(SAMPLE_DATA, "simulated"), "--out", str(run)]
    first = CliRunner().invoke(cli, [*args, *TINY, "--epochs", "2"])
    assert first.exit_code == 0, first.output
    best = (run / "best.pt").read_bytes()
    again = CliRunner().invoke(cli, [*args, "--resume"])
    assert again.exit_code == 0, again.output
    assert f"{run} is already complete: 2 epoch(s), best epoch" in again.output
    assert "nothing to resume (a larger --epochs trains on)" in again.output
    assert (run / "best.pt").read_bytes() == best
    longer = CliRunner().invoke(cli, ["-v", *args, "--resume", "--epochs", "3"])
    assert longer.exit_code == 0, longer.output
    assert "--resume with epochs 3: the run was started with 2" in longer.output
    assert "Trained 3 epoch(s)" in longer.output
    state = load_checkpoint(str(run / "last.pt"))
    assert len(state["trainer"]["history"]) == 3
    assert state["card"].training["options"]["width"] == 8  # not the default 32


def test_a_second_ctrl_c_says_what_is_kept(tmp_path, monkeypatch):
    import signal

    import galcnn.stages.train as stages
    from galcnn.interrupt import Interrupted

    run = tmp_path / "run"
    args = ["train", "--data", os.path.join(SAMPLE_DATA, "simulated"), "--out", str(run)]
    assert CliRunner().invoke(cli, [*args, *TINY, "--epochs", "1"]).exit_code == 0

    def interrupted_at_once(*a, **k):  # a second Ctrl-C: no batch boundary reached
        raise Interrupted(signal.SIGINT)

    monkeypatch.setattr(stages, "train", interrupted_at_once)
    result = CliRunner().invoke(cli, [*args, "--resume", "--epochs", "3"])
    assert result.exit_code == 130
    assert (f"stopped by Ctrl-C at once; {run / 'last.pt'} from the last complete epoch is "
            "kept.") in result.output
    assert "nothing was kept" not in result.output and "Continue with: galcnn" in result.output


def test_a_stop_during_the_last_epoch_stops_and_resume_finishes(simulated, tmp_path):
    """Ctrl-C in the last epoch printed 'stopping' and then the run finished, exit 0. It
    now stops like any other epoch; --resume finishes the run without training again."""
    import signal

    from galcnn.interrupt import Interrupted, StopRequest
    from galcnn.stages.train import TrainHooks, train

    stop = StopRequest()

    def progress(epoch, n_images):
        def advance(n):
            if epoch == 1:
                stop.signum = signal.SIGINT
        return advance

    run = str(tmp_path / "run")
    with pytest.raises(Interrupted) as caught:
        train(simulated, run, tiny(epochs=2, batch_size=128),
              hooks=TrainHooks(progress=progress, stop=stop))
    assert caught.value.saved.endswith("holds every epoch: --resume finishes the run "
                                       "(calibration, metrics)")
    assert not os.path.exists(os.path.join(run, "metrics.json"))
    result = train(simulated, run, resume=True)
    assert not result.already_complete and result.epochs_run == 2
    assert os.path.isfile(os.path.join(run, "metrics.json"))
    assert len(load_checkpoint(os.path.join(run, "last.pt"))["trainer"]["history"]) == 2


def test_a_ctrl_c_while_the_run_finishes_is_said_honestly(tmp_path, monkeypatch):
    """One Ctrl-C after the last epoch (the run calibrating and writing its metrics) let the
    run finish and exit 0 after 'stopping...': the output now says the run was finished."""
    import signal

    import galcnn.stages.train.loop as loop

    finish = loop._Run.finish

    def interrupted_finish(self):
        os.kill(os.getpid(), signal.SIGINT)
        return finish(self)

    monkeypatch.setattr(loop._Run, "finish", interrupted_finish)
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--data", os.path.join(SAMPLE_DATA, "simulated"),
                                      "--out", str(run), *TINY, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert ("galcnn train: Ctrl-C came after the last epoch: the run was finished, every "
            "output is complete") in result.output
    assert (run / "metrics.json").is_file()


@pytest.mark.slow
def test_an_ensemble_is_trained_reported_and_predicted_with_its_disagreement(tmp_path):
    import csv

    from galcnn.cli import cli as galcnn

    run = tmp_path / "run"
    data = os.path.join(SAMPLE_DATA, "simulated")
    result = CliRunner().invoke(galcnn, ["train", "--data", data, "--out", str(run),
                                         "--epochs", "1", "--ensemble", "2", "--seed", "3",
                                         *TINY])
    assert result.exit_code == 0, result.output
    assert "Trained an ensemble of 2 (2 epochs in all)" in result.output
    assert "member 1 (seed 3): best epoch 1 of 1" in result.output
    assert "member 2 (seed 4)" in result.output and "Validation split, ensemble of 2" \
        in result.output
    out = tmp_path / "beliefs.csv"
    result = CliRunner().invoke(galcnn, ["predict", str(run), os.path.join(data, "elliptical"),
                                         "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 30 and all(float(row["spread"]) >= 0 for row in rows)
    assert any(float(row["spread"]) > 0 for row in rows)  # the members disagree somewhere


@pytest.mark.slow
def test_a_preset_fills_what_the_command_line_leaves(tmp_path):
    run = tmp_path / "run"
    data = os.path.join(SAMPLE_DATA, "simulated", "elliptical")
    other = os.path.join(SAMPLE_DATA, "simulated", "edge_on")
    raw = tmp_path / "raw"
    shutil.copytree(data, raw / "elliptical")
    shutil.copytree(other, raw / "edge_on")
    result = CliRunner().invoke(cli, ["train", "--data", str(raw), "--out", str(run),
                                      "--preset", "gpu", "--epochs", "1", "--ensemble", "1",
                                      "--width", "8", "--size", "32"])
    assert result.exit_code == 0, result.output
    options = json.load(open(run / "config.json"))["options"]
    assert (options["epochs"], options["ensemble"], options["width"]) == (1, 1, 8)  # given
    assert (options["batch_size"], options["patience"]) == (128, 30)  # the preset's
