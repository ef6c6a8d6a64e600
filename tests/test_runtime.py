"""Devices, the one worker-count policy, seeds and RNG states."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from galcnn.choices import parse_device
from galcnn.runtime import (amp_dtype, configure_precision, precision_of, rng_states,
                            seed_everything, select_device, set_rng_states, usable_cpus,
                            worker_count)


def test_worker_policy():
    cpus = usable_cpus()
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert worker_count(3, device=cpu) == 3 and worker_count(0) == 0
    assert worker_count(None) == cpus  # prepare: no model shares the cores
    assert worker_count(None, device=cpu) == max(1, cpus - 1)
    assert worker_count(None, device=cpu, decodes_fits=False) == 0
    assert worker_count(None, device=gpu, world_size=1) == max(1, cpus - 1)
    assert worker_count(None, device=gpu, decodes_fits=False) == max(1, min(8, cpus - 1))


def test_devices_and_precision():
    assert select_device("cpu") == torch.device("cpu")
    assert amp_dtype(torch.device("cpu")) is None
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            select_device("cuda")


def test_seeds_and_states_restore_every_generator():
    seed_everything(7, 3)
    states = rng_states()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_states(states)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
    a = seed_everything(7, 3).initial_seed()
    assert a == seed_everything(7, 3).initial_seed() != seed_everything(7, 4).initial_seed()


def test_device_names_and_one_gpu_per_local_rank(monkeypatch):
    """cuda:N names a GPU; a distributed process takes its local rank's GPU, and a local rank
    with no GPU of its own is refused instead of sharing GPU 0 (what LOCAL_RANK % count did)."""
    assert parse_device("cuda:1") == ("cuda", 1) and parse_device("auto") == ("auto", None)
    for wrong in ("cuda:x", "cpu:1", "tpu", "cuda:"):
        with pytest.raises(ValueError, match="unknown device"):
            parse_device(wrong)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            select_device("cuda:0")
    chosen = []
    monkeypatch.delenv("GALCNN_DEVICE")  # auto as on a GPU node
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert select_device("cuda:1") == torch.device("cuda", 1)
    assert select_device("cuda", local_rank=1) == torch.device("cuda", 1)
    assert chosen == [1, 1]
    with pytest.raises(ValueError, match=r"--device cuda:2 needs GPU 2, but only 2 GPU\(s\)"):
        select_device("cuda:2")
    with pytest.raises(ValueError, match="local process 2 .* start at most 2 processes per node"):
        select_device("auto", local_rank=2)
    with pytest.raises(ValueError, match="give --device cuda"):
        select_device("cuda:0", local_rank=1)


def test_galcnn_device_says_what_auto_means(monkeypatch):
    monkeypatch.setenv("GALCNN_DEVICE", "cpu")
    assert select_device("auto") == torch.device("cpu")
    monkeypatch.setenv("GALCNN_DEVICE", "gpu")
    with pytest.raises(ValueError, match="GALCNN_DEVICE: unknown device 'gpu'"):
        select_device("auto")
    assert select_device("cpu") == torch.device("cpu")  # an explicit choice wins


@pytest.mark.parametrize("capability,expected", [((7, 0), torch.float16),
                                                 ((7, 5), torch.float16),
                                                 ((8, 0), torch.bfloat16),
                                                 ((9, 0), torch.bfloat16)])
def test_bf16_only_where_the_gpu_computes_it_natively(monkeypatch, capability, expected):
    """V100 (7.0) and T4 (7.5) emulate bf16 (is_bf16_supported() says True there): fp16 with
    loss scaling is their fast path."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    gpu = torch.device("cuda", 0)
    assert amp_dtype(gpu) == expected
    assert amp_dtype(gpu, enabled=False) is None
    assert precision_of(gpu, amp_dtype(gpu)) == str(expected).replace("torch.", "")
    assert precision_of(gpu, None) == "float32"


def test_no_amp_turns_tf32_off_on_a_gpu():
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        configure_precision(torch.device("cuda", 0), amp=False)
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        configure_precision(torch.device("cuda", 0), amp=True)
        assert torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        configure_precision(torch.device("cpu"), amp=True)  # nothing to do on a CPU
        assert not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def test_gpu_generator_states_restore_on_any_number_of_gpus(monkeypatch):
    """A checkpoint of an older galcnn saved every GPU's state (four here); resumed on one
    GPU, this GPU's state is restored (set_rng_state_all raised IndexError)."""
    states = rng_states()
    saved = [torch.full((8,), i, dtype=torch.uint8) for i in range(4)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda":
                        restored.append(state))
    set_rng_states({**states, "cuda": saved})
    assert len(restored) == 1 and torch.equal(restored[0], saved[0])
    set_rng_states({**states, "cuda": saved[2]})  # what galcnn saves now: this GPU's alone
    assert torch.equal(restored[1], saved[2]) and restored[1].device.type == "cpu"
