"""DistributedDataParallel with two CPU processes (gloo), started the way users start it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from galcnn.checkpoint import load_checkpoint

from conftest import SAMPLE_DATA


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
