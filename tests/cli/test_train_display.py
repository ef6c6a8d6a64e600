"""What ``galcnn train`` shows a person at a terminal, and how it stops on a signal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from galcnn.checkpoint import load_checkpoint
from galcnn.cli.train_display import format_row, header

from helpers import SAMPLE_DATA, Terminal, csv_rows

pytest.importorskip("pyte")

TRAIN = ["train", "--data", os.path.join(SAMPLE_DATA, "simulated"), "--width", "8", "--size",
         "32", "--batch-size", "16"]
ROW = re.compile(r"^ +(\d+)/(\d+) +(\d+\.\d{4}) +(\d\.\d{3}) +(\d+\.\d{4}) +(\d\.\d{3}) +"
                 r"(\d\.\d{3}) +([\d,]+) +(\d+(\.\d)?s)( +best)?$")


def test_a_row_lines_up_under_the_header():
    row = {"epoch": 12, "train_loss": 0.51234, "train_accuracy": 0.8, "val_loss": 1.25,
           "val_accuracy": 0.75, "val_macro_f1": 0.7012, "images_per_s": 12345.6,
           "seconds": 75.2, "best": True}
    line, names = format_row(row, 50, "val_macro_f1"), header("macro-F1")
    assert line == ("  12/50   0.5123  0.800    1.2500    0.750     0.701    12,346   1m15s"
                    "  best")
    ends = [m.end() for m in re.finditer(r"\S+", line)][:8]
    assert ends == [m.end() for m in re.finditer(r"\S+(?: \S+)?", names)]


@pytest.mark.slow
def test_train_on_a_terminal_shows_one_intact_row_per_epoch(tmp_path):
    run = tmp_path / "run"
    terminal = Terminal([*TRAIN, "--out", str(run), "--epochs", "6"], columns=90)
    assert terminal.finish() == 0
    lines = terminal.lines()
    shown = [ROW.match(line) for line in lines]
    rows = [m for m in shown if m]
    assert [(m[1], m[2]) for m in rows] == [(str(e), "6") for e in range(1, 7)], lines
    assert sum(1 for line in lines if line.strip().startswith("epoch") and "loss" in line) == 1
    assert not any("images/s" in line and "galcnn INFO" in line for line in lines)  # log lines
    assert not any(re.search(r"epoch \d+/6 .*images", line) for line in lines)  # no stale bars
    history = csv_rows(run / "metrics.csv")
    for match, written in zip(rows, history):  # the rows show what metrics.csv holds
        assert float(match[3]) == pytest.approx(float(written["train_loss"]), abs=6e-5)
        assert float(match[7]) == pytest.approx(float(written["val_macro_f1"]), abs=6e-4)
    best = [int(m[1]) for m in rows if m[11]]
    assert best[0] == 1 and load_checkpoint(str(run / "best.pt"))["card"].training["epoch"] \
        == best[-1]
    assert any(line.startswith("Trained 6 epoch(s)") for line in lines)


@pytest.mark.slow
def test_ctrl_c_saves_says_how_to_resume_and_resume_finishes(tmp_path):
    run = tmp_path / "run"
    terminal = Terminal([*TRAIN, "--out", str(run), "--epochs", "200", "--batch-size", "8"])
    assert terminal.wait_for(" 2/200 ")
    terminal.process.send_signal(signal.SIGINT)
    assert terminal.finish() == 130
    text = terminal.text()  # long lines wrap at the terminal's edge
    assert "Ctrl-C: stopping after this batch" in text
    said = re.search(r"stopped by Ctrl-C; (\S+) holds epoch (\d+) up to batch (\d+)/13\.", text)
    assert said and said[1] == str(run / "last.pt"), text
    partial = load_checkpoint(said[1])["trainer"]["partial"]
    assert partial["epoch"] + 1 == int(said[2]) and partial["batches"] == int(said[3])
    command = re.search(r"Continue with: galcnn (.*--resume)", text)[1]
    assert command.endswith("--resume") and "--epochs 200" in command
    resumed = subprocess.run([sys.executable, "-m", "galcnn", *command.split()[:-1],
                              "--epochs", "4", "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} at epoch {said[2]} at batch {int(said[3]) + 1}" in resumed.stderr
    assert "--resume with epochs 4: the run was started with 200" in resumed.stderr


def _children(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return {int(p) for p in handle.read().split()}
    except OSError:
        return set()


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_sigterm_with_loader_workers_saves_exits_143_and_leaves_no_workers(tmp_path):
    import time

    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "galcnn", *TRAIN, "--out", str(run),
                                "--epochs", "200", "--batch-size", "8", "-j", "2"],
                               stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    while not (run / "metrics.csv").exists() and time.monotonic() < deadline:
        workers |= _children(process.pid)
        time.sleep(0.05)
    workers |= _children(process.pid)
    assert len(workers) >= 2  # the DataLoader's processes
    process.send_signal(signal.SIGTERM)
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == 143, stderr
    assert "stopped by SIGTERM" in stderr and "Continue with: galcnn train" in stderr
    assert "Traceback" not in stderr
    time.sleep(0.5)
    alive = [pid for pid in workers if os.path.exists(f"/proc/{pid}")
             and open(f"/proc/{pid}/stat").read().split()[2] != "Z"]
    assert alive == []
    assert load_checkpoint(str(run / "last.pt"))["trainer"]["epoch"] >= 0
