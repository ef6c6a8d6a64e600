"""Several training processes on this CPU (gloo), launched as users launch them: torchrun, and
srun's tasks (its variables set by hand). Rank 0 alone validates and decides; the others
follow it to the same end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from galcnn.checkpoint import load_checkpoint

from helpers import SAMPLE_DATA

COUNTING = """
import os, sys
import galcnn.stages.train.tasks as tasks
from galcnn.cli import cli

rank = os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))
calls = []
validate = tasks.ClassifyTask.validate

def counted(self, *args):
    calls.append(1)
    return validate(self, *args)

tasks.ClassifyTask.validate = counted
try:
    cli(sys.argv[1:])
finally:
    print(f"rank {rank} validated {len(calls)} times", flush=True)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _train_args(run: str, *extra: str) -> list[str]:
    return ["-q", "train", "--data", os.path.join(SAMPLE_DATA, "simulated"), "--out", run,
            "--width", "8", "--size", "32", "--batch-size", "16", "--workers", "0",
            "--device", "cpu", *extra]


@pytest.mark.slow
def test_rank_0_validates_alone_and_every_rank_stops_with_it(tmp_path):
    """With seed 5 and patience 1 the ranks' own validation scores (BatchNorm statistics
    differ between ranks) stopped rank 0 after epoch 8 and not rank 1, which then died."""
    script = tmp_path / "counting.py"
    script.write_text(COUNTING)
    run = str(tmp_path / "run")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", str(script),
               *_train_args(run, "--epochs", "12", "--patience", "1", "--seed", "5")]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = load_checkpoint(os.path.join(run, "last.pt"))
    epochs = state["trainer"]["epoch"] + 1
    assert state["trainer"]["stopped_early"] and epochs < 12
    assert "rank 1 validated 0 times" in done.stdout
    assert f"rank 0 validated {epochs} times" in done.stdout
    assert os.path.isfile(os.path.join(run, "metrics.json"))


@pytest.mark.slow
def test_srun_tasks_train_one_model_and_resume_in_one_process(tmp_path):
    """Two srun tasks (SLURM_* as srun sets them) make one two-process job, gcnn included,
    whose gradients DDP takes without copying (its weights are not made channels-last);
    the run then resumes in a single process, which says the batch split changed."""
    run = str(tmp_path / "run")
    port = str(_free_port())
    processes = []
    for rank in range(2):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "SLURM_STEP_NUM_TASKS": "2",
               "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank), "SLURM_JOB_ID": "7",
               "SLURM_STEP_NODELIST": "localhost", "MASTER_PORT": port}
        env.pop("WORLD_SIZE", None)
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "galcnn", *_train_args(run, "--epochs", "2", "--arch",
                                                        "gcnn", "--patience", "99")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=300) for p in processes]
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
        assert "Grad strides do not match" not in err
    config = json.load(open(os.path.join(run, "config.json")))
    assert (config["world_size"], config["launcher"]) == (2, "srun")
    done = subprocess.run([sys.executable, "-m", "galcnn", "train", *_train_args(
        run, "--epochs", "3", "--arch", "gcnn", "--patience", "99", "--resume")[2:]],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "was trained by 2 process(es) (batch 16) and resumes with 1 (batch 16)" in done.stderr
    state = load_checkpoint(os.path.join(run, "last.pt"))
    assert state["trainer"]["epoch"] == 2 and state["trainer"]["world_size"] == 1


DYING = """
import os, signal, sys
import galcnn.stages.train.tasks as tasks
from galcnn.cli import cli

steps = []
loss = tasks.ClassifyTask.loss

def dying(self, *args):
    steps.append(1)
    if os.environ["RANK"] == "1" and len(steps) == 8:  # in the second epoch
        os.kill(os.getpid(), signal.SIGKILL)
    return loss(self, *args)

tasks.ClassifyTask.loss = dying
cli(sys.argv[1:])
"""


@pytest.mark.slow
def test_a_rank_that_dies_leaves_rank_0_one_line(tmp_path):
    """Killing one rank gave rank 0 a 44-line gloo traceback."""
    import glob

    script = tmp_path / "dying.py"
    script.write_text(DYING)
    run, logs = str(tmp_path / "run"), tmp_path / "logs"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "--log-dir", str(logs), "--redirects", "3",
               str(script), *_train_args(run, "--epochs", "4", "--patience", "99")]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    (rank0,) = glob.glob(str(logs / "**" / "0" / "stderr.log"), recursive=True)
    said = open(rank0).read()
    assert "Traceback" not in said, said[-3000:]
    lines = [line for line in said.splitlines() if line.strip() and " INFO: " not in line]
    assert 1 <= len(lines) <= 2, said[-3000:]  # the one line (or the SIGTERM stop and resume)
    assert ("another process of this 2-process job (torchrun) stopped or stopped answering; "
            f"{run}/last.pt is kept: resume with the same launcher and --resume") in said or \
        "stopped by SIGTERM" in said, said[-3000:]
    assert os.path.isfile(os.path.join(run, "last.pt"))


@pytest.mark.slow
def test_an_ensemble_trains_under_torchrun_in_one_process_group(tmp_path):
    """Each member set the process group up anew: the second found the first one's
    addresses and the job died; the members now share one group."""
    run = str(tmp_path / "run")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "galcnn",
               *_train_args(run, "--epochs", "1", "--ensemble", "2")]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = load_checkpoint(run)
    assert len(state["members"]) == 1 and state["card"].training["ensemble"]["seeds"] == [0, 1]
    assert all(load_checkpoint(os.path.join(run, "members", k))["card"].training["world_size"]
               == 2 for k in ("1", "2"))
