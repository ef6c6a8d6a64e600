"""Where and how the network runs: device, mixed precision, how many reading processes,
distributed processes and seeds. Shared by every stage."""

from __future__ import annotations

import contextlib
import logging
import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from galcnn.choices import DEVICES

__all__ = ["Distributed", "distributed_from_env", "init_distributed", "close_distributed",
           "select_device", "amp_dtype", "autocast", "usable_cpus", "worker_count",
           "inference_batch_size",
           "seed_everything", "rng_states", "set_rng_states"]

logger = logging.getLogger("galcnn")


@dataclass(frozen=True)
class Distributed:
    """This process's place in a ``torchrun`` job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_from_env() -> Distributed:
    """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` as set by torchrun (or srun + torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    return Distributed(int(os.environ.get("RANK", "0")), world,
                       int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(dist_info: Distributed, device: torch.device) -> None:
    if not dist_info.enabled or torch.distributed.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend=backend, rank=dist_info.rank,
                                         world_size=dist_info.world_size)


def close_distributed() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """CUDA when present (the process's own GPU under torchrun), else CPU; ``name`` overrides."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is visible to torch")
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError("--device mps: Apple MPS is not available")
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    return torch.device(name)


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """bf16 on GPUs that support it (no loss scaling needed), else fp16; none on CPU."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def usable_cpus() -> int:
    """The CPUs this process may use (respects affinity masks and Slurm's cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def worker_count(requested: int | None, *, device: torch.device | None = None,
                 world_size: int = 1, decodes_fits: bool = True) -> int:
    """Reading processes, the one policy of every stage (``requested`` wins when given).

    With no model in the process (``device`` None: ``prepare``) every usable CPU reads. When
    the model computes on the CPU it keeps one core: one fewer reader, and none at all for
    memory-mapped prepared batches (``decodes_fits=False``), which are cheaper to gather in
    the process than to pass between processes. A GPU process keeps one core of its share of
    the CPUs and gives the rest to decoding FITS files (the device cannot go faster than they
    read), or up to 8 to gathering prepared batches.
    """
    if requested is not None:
        return requested
    cpus = usable_cpus()
    if device is None:
        return cpus
    if device.type == "cpu":
        return max(1, cpus - 1) if decodes_fits else 0
    share = max(1, cpus // max(world_size, 1) - 1)
    return share if decodes_fits else min(8, share)


def inference_batch_size(requested: int | None, device: torch.device) -> int:
    """Cutouts per forward pass of a classifier (``requested`` wins when given): 16 on a
    CPU, where smaller batches stay in cache (pooled GZ1 model, 2 cores: 251 cutouts/s
    end-to-end at 16 against 210 at 64 and 189 at 128); 256 on a GPU."""
    if requested is not None:
        return requested
    return 256 if device.type == "cuda" else 16


def seed_everything(seed: int, epoch: int = 0) -> torch.Generator:
    """Seed every RNG from (seed, epoch), so epoch N is the same whether or not the job was
    resumed before it; returns a CPU generator for augmentation choices."""
    value = (seed * 1_000_003 + epoch) % 2**63
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)
    generator = torch.Generator()
    generator.manual_seed(value + 1)
    return generator


def rng_states() -> dict:
    """Every RNG's state as tensors and plain values (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"torch": torch.get_rng_state(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)),
                                                       int(pos), int(has_gauss), float(cached)],
              "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    python = states["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
