"""Devices, the one worker-count policy, seeds and RNG states."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from galcnn.runtime import (amp_dtype, rng_states, seed_everything, select_device,
                            set_rng_states, usable_cpus, worker_count)


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
