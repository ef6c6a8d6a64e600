"""How a launcher's variables become this process's place in a distributed job."""

from __future__ import annotations

import pytest
import torch

from galcnn.distributed import Distributed, distributed_from_env, first_host, is_peer_failure
from galcnn.errors import GalcnnError


def test_torchrun_variables():
    info = distributed_from_env({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1",
                                 "SLURM_STEP_NUM_TASKS": "2"})
    assert info == Distributed(5, 8, 1, "torchrun", "env://")
    assert not info.is_main and info.enabled
    assert distributed_from_env({"WORLD_SIZE": "1", "RANK": "0"}) == Distributed()


def test_srun_tasks_are_the_processes_of_one_job():
    """srun with --ntasks 4 over two nodes: each task is a process on its local GPU; they
    meet at the step's first node (srun sets no MASTER_ADDR)."""
    env = {"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1",
           "SLURM_STEP_NODELIST": "gpu[07-08]", "SLURM_JOB_ID": "41", "SLURM_STEP_ID": "0",
           "SLURM_NTASKS": "4"}
    info = distributed_from_env(env)
    assert (info.rank, info.world_size, info.local_rank, info.launcher) == (3, 4, 1, "srun")
    assert info.init_method == "tcp://gpu07:20287"
    assert distributed_from_env({**env, "SLURM_PROCID": "0"}).init_method == info.init_method
    given = distributed_from_env({**env, "MASTER_ADDR": "head", "MASTER_PORT": "29500"})
    assert given.init_method == "tcp://head:29500"


def test_a_batch_script_without_srun_is_one_process():
    """The batch script of a job with --ntasks 4 sees SLURM_NTASKS but no job step: running
    galcnn there directly must not wait for three partners that never start."""
    assert distributed_from_env({"SLURM_NTASKS": "4", "SLURM_PROCID": "0",
                                 "SLURM_JOB_ID": "41"}) == Distributed()
    assert distributed_from_env({"SLURM_STEP_NUM_TASKS": "1"}) == Distributed()


@pytest.mark.parametrize("nodelist,host", [("gpu[07-09,12],cpu1", "gpu07"), ("node17", "node17"),
                                           ("a[3,5]", "a3"), ("x-1,x-2", "x-1")])
def test_first_host_of_a_slurm_node_list(nodelist, host):
    assert first_host(nodelist) == host


def test_peer_failures_are_told_apart_from_own_errors():
    assert is_peer_failure(RuntimeError("[../third_party/gloo/transport/tcp/pair.cc:534] "
                                        "Connection closed by peer [10.0.0.2]:2231"))
    backend = getattr(torch.distributed, "DistBackendError", None)
    if backend is not None:
        assert is_peer_failure(backend("NCCL communicator was aborted on rank 1"))
    assert not is_peer_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_peer_failure(GalcnnError("rank 0: Gloo said no"))
    assert not is_peer_failure(ValueError("Connection closed by peer"))
