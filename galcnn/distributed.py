"""Several training processes: how the launcher started this one, and how they agree.

``torchrun`` (also under ``srun``, one torchrun per node) sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; ``srun`` alone with several tasks sets ``SLURM_PROCID``,
``SLURM_STEP_NUM_TASKS`` and ``SLURM_LOCALID`` (a batch script run without ``srun`` sets
none of the step variables, so it is one process, as it should be). Either way each process
drives the GPU of its local rank.

Gradients travel over NCCL on GPUs (gloo on CPUs) with the timeout the user gives. What the
processes must agree on besides (whether to stop now, what rank 0 decided after validating
alone, whether its preparation of raw cutouts worked) travels over a second, CPU-side gloo
group: a flag exchanged there never waits for queued GPU work, and waiting there while rank 0
prepares or validates for a long time never trips NCCL's watchdog. A process that dies closes
its connections, so the others fail at once instead of waiting for a timeout.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch

from galcnn.errors import GalcnnError

__all__ = ["Distributed", "distributed_from_env", "first_host", "init_distributed", "joined",
           "close_distributed", "agree_max", "from_main", "sum_across", "is_peer_failure",
           "DEFAULT_TIMEOUT_MINUTES"]

DEFAULT_TIMEOUT_MINUTES = 30.0
"""How long a gradient exchange may wait for a slow or stuck process."""

CONTROL_TIMEOUT = timedelta(days=7)
"""How long processes wait for rank 0 on the control group (preparing a survey's cutouts can
take hours); a dead rank 0 is noticed at once, as its connections close."""

_control = None


@dataclass(frozen=True)
class Distributed:
    """This process's place in a distributed job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = ""
    """``torchrun`` or ``srun``; empty for a single process."""
    init_method: str = "env://"

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list: ``gpu[07-09,12],cpu1`` -> ``gpu07``."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        raise ValueError(f"cannot read the Slurm node list {nodelist!r}")
    prefix, ranges = match[1], match[2]
    return prefix if ranges is None else prefix + re.split(r"[-,]", ranges)[0]


def distributed_from_env(environ: dict | None = None) -> Distributed:
    """This process's rank, world size and local rank, from torchrun's variables or, without
    them, from those ``srun`` sets for each task of a job step."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" in env:
        world = int(env["WORLD_SIZE"])
        if world <= 1:
            return Distributed()
        return Distributed(int(env.get("RANK", "0")), world, int(env.get("LOCAL_RANK", "0")),
                           "torchrun")
    tasks = int(env.get("SLURM_STEP_NUM_TASKS", "1") or 1)
    if tasks <= 1:
        return Distributed()
    host = env.get("MASTER_ADDR") or first_host(env.get("SLURM_STEP_NODELIST")
                                                or env.get("SLURM_JOB_NODELIST", "localhost"))
    port = env.get("MASTER_PORT") or str(
        20000 + (int(env.get("SLURM_JOB_ID", "0")) * 7 + int(env.get("SLURM_STEP_ID", "0")
                                                              or 0)) % 20000)
    return Distributed(int(env.get("SLURM_PROCID", "0")), tasks,
                       int(env.get("SLURM_LOCALID", "0")), "srun", f"tcp://{host}:{port}")


def init_distributed(info: Distributed, device: torch.device,
                     timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES) -> None:
    """Join the job: NCCL bound to this process's GPU (gloo on CPUs), and the CPU-side
    control group."""
    global _control
    if not info.enabled or torch.distributed.is_initialized():
        return
    kwargs = {"backend": "nccl" if device.type == "cuda" else "gloo", "rank": info.rank,
              "world_size": info.world_size, "init_method": info.init_method,
              "timeout": timedelta(minutes=timeout_minutes)}
    if device.type == "cuda" and "device_id" in inspect.signature(
            torch.distributed.init_process_group).parameters:
        kwargs["device_id"] = device
    torch.distributed.init_process_group(**kwargs)
    _control = torch.distributed.new_group(backend="gloo", timeout=CONTROL_TIMEOUT)


@contextmanager
def joined(info: Distributed, device: torch.device,
           timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES) -> Iterator[None]:
    """In the job's process group for the block (:func:`init_distributed`), left at its end
    unless the group was already set up outside it (an ensemble's members share one: a
    group set up again in the same process finds the old one's addresses)."""
    opened = info.enabled and not torch.distributed.is_initialized()
    init_distributed(info, device, timeout_minutes)
    try:
        yield
    finally:
        if opened:
            close_distributed()


def close_distributed() -> None:
    global _control
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    _control = None


def agree_max(info: Distributed, value: int) -> int:
    """The largest ``value`` any process holds (a stop signal number, say), exchanged on the
    CPU: every process gets the same answer at the same point."""
    if not info.enabled:
        return value
    flag = torch.tensor([value], dtype=torch.int64)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX, group=_control)
    return int(flag[0])


def from_main(info: Distributed, value=None):
    """Rank 0's ``value`` (any picklable object) on every process; the others wait for it
    on the control group, however long rank 0 takes."""
    if not info.enabled:
        return value
    box = [value if info.is_main else None]
    torch.distributed.broadcast_object_list(box, src=0, group=_control)
    return box[0]


def sum_across(info: Distributed, values: torch.Tensor) -> torch.Tensor:
    """``values`` summed over every process (an epoch's running sums, on the device)."""
    if info.enabled:
        values = values.clone()
        torch.distributed.all_reduce(values)
    return values


def is_peer_failure(exc: BaseException) -> bool:
    """Whether an error is another process of the job failing (its connection closed, or a
    collective timed out), not this one's own problem."""
    if isinstance(exc, GalcnnError) or not isinstance(exc, RuntimeError):
        return False
    names = {c.__name__ for c in type(exc).__mro__}
    text = str(exc)
    return bool(names & {"DistBackendError", "DistNetworkError", "DistError"}) or any(
        marker in text for marker in ("Connection closed by peer", "Connection reset by peer",
                                      "NCCL", "Gloo", "gloo", "Timed out"))
