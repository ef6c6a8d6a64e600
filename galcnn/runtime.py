"""Where and how the network runs: device, numerical precision, how many reading processes,
and seeds. Shared by every stage (distributed processes: :mod:`galcnn.distributed`)."""

from __future__ import annotations

import contextlib
import logging
import os
import random

import numpy as np
import torch

from galcnn.choices import parse_device

__all__ = ["select_device", "parse_device", "amp_dtype", "configure_precision", "precision_of",
           "autocast", "usable_cpus", "worker_count", "inference_batch_size", "seed_everything",
           "rng_states", "set_rng_states", "to_device"]

logger = logging.getLogger("galcnn")

def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """CUDA when present, else CPU; ``name`` overrides (``cuda:N`` names one GPU), and so
    does the environment variable ``GALCNN_DEVICE`` for ``auto`` (a site or a test suite
    that wants the CPU on a GPU node says so once).

    Under a distributed launcher each process takes the GPU of its local rank (``cuda`` or
    ``auto``); a local rank with no GPU of its own is refused rather than sharing one, which
    would hide a wrong ``--nproc_per_node`` (or ``--ntasks-per-node``)."""
    kind, index = parse_device(name)
    if kind == "auto" and os.environ.get("GALCNN_DEVICE"):
        name = os.environ["GALCNN_DEVICE"]
        try:
            kind, index = parse_device(name)
        except ValueError as exc:
            raise ValueError(f"GALCNN_DEVICE: {exc}") from None
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: no CUDA device is visible to torch")
        count = torch.cuda.device_count()
        if index is not None and local_rank:
            raise ValueError(f"--device {name} names one GPU, but this is local process "
                             f"{local_rank} of a distributed job: give --device cuda, and "
                             "each process takes the GPU of its local rank")
        chosen = local_rank if index is None else index
        if chosen >= count:
            why = (f"--device {name}" if index is not None else
                   f"local process {local_rank} of a distributed job")
            raise ValueError(f"{why} needs GPU {chosen}, but only {count} GPU(s) are visible"
                             + ("" if index is not None else
                                f"; start at most {count} processes per node"))
        torch.cuda.set_device(chosen)
        return torch.device("cuda", chosen)
    if kind == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError("--device mps: Apple MPS is not available")
    return torch.device(kind)


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The autocast type: bf16 on GPUs that compute it natively (compute capability 8.0 and
    later: A100, H100, L4, RTX 30xx and newer), where no loss scaling is needed; fp16 (with a
    GradScaler in training) on older GPUs (V100, T4), which emulate bf16 slowly although
    ``torch.cuda.is_bf16_supported()`` says True; none on a CPU or with ``enabled`` False."""
    if not enabled or device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


def configure_precision(device: torch.device, amp: bool) -> None:
    """Without mixed precision a GPU computes in true float32: TensorFloat-32 convolutions
    and matrix products (10-bit mantissas) are turned off, so ``--no-amp`` means float32 end
    to end. With it, cuDNN may keep TF32 for the float32 parts."""
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = amp
        torch.backends.cuda.matmul.allow_tf32 = False


def precision_of(device: torch.device, dtype: torch.dtype | None) -> str:
    """How the numbers of a run are computed, as recorded in configs, cards and tables:
    ``bfloat16`` or ``float16`` (autocast), else ``float32``."""
    return str(dtype).replace("torch.", "") if dtype is not None else "float32"


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small CPU tensor on ``device`` without waiting for the device: pinned and copied
    asynchronously to a GPU (a plain copy of pageable memory waits for every queued
    kernel first)."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


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
    """Every RNG's state as CPU tensors and plain values (loadable with
    ``weights_only=True``): CPU generators, and the generator of this process's GPU."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"torch": torch.get_rng_state(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)),
                                                       int(pos), int(has_gauss), float(cached)],
              "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def set_rng_states(states: dict) -> None:
    """Restore :func:`rng_states`, wherever the checkpoint's tensors were loaded to, on any
    number of GPUs: the saved GPU generator goes to this process's GPU (a checkpoint of an
    older galcnn holds one per GPU of the machine that saved it: this GPU's number is used
    when it is there, else the first)."""
    torch.set_rng_state(states["torch"].to("cpu", torch.uint8))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    python = states["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    cuda = states.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if isinstance(cuda, (list, tuple)):
            if not cuda:
                return
            current = torch.cuda.current_device()
            cuda = cuda[current] if current < len(cuda) else cuda[0]
        torch.cuda.set_rng_state(cuda.to("cpu", torch.uint8))
