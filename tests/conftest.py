"""Fixtures shared across test files: the shared survey data, small cutout trees, and tiny
real models trained once per session (a second or two each).

The suite computes on the CPU wherever it runs (``GALCNN_DEVICE=cpu``: what ``--device auto``
means for galcnn, in this process and the commands it starts), so its exact comparisons hold
on a GPU node too; tests marked ``gpu`` name the CUDA device themselves and are skipped
where there is none.
"""

from __future__ import annotations

import glob
import os
import shutil

import numpy as np
import pytest

os.environ["GALCNN_DEVICE"] = "cpu"


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

from helpers import SAMPLE_DATA, SHARED_DATA, noise_image, tiny, write_fits


@pytest.fixture
def shared_data():
    if not os.path.isdir(SHARED_DATA):
        pytest.skip("shared survey data not present")
    return os.path.abspath(SHARED_DATA)


@pytest.fixture
def class_dirs(tmp_path):
    """Four cutouts in each of two class folders: tmp/cutouts/{a,b}/x*.fits."""
    root = tmp_path / "cutouts"
    for label, offset in (("a", 0), ("b", 100)):
        for i in range(4):
            write_fits(root / label / f"x{i}.fits", noise_image(seed=offset + i))
    return root


@pytest.fixture
def cutouts(tmp_path):
    """Twelve simulated cutouts (elliptical, spiral_cw, spiral_acw; .fits.fz, image in HDU 1)
    in one flat directory."""
    folder = tmp_path / "cutouts"
    folder.mkdir()
    for kind in ("elliptical", "spiral_cw", "spiral_acw"):
        for path in sorted(glob.glob(os.path.join(SAMPLE_DATA, "simulated", kind, "*")))[:4]:
            shutil.copy(path, folder)
    return folder


@pytest.fixture(scope="session")
def simulated(tmp_path_factory) -> str:
    """The sample simulated cutouts prepared at 32 px (4 classes, spiral_cw/acw a mirror
    pair), a quarter of each class for validation."""
    from galcnn.data.recipe import Preprocess
    from galcnn.stages.prepare import PrepareOptions, prepare

    out = str(tmp_path_factory.mktemp("prep") / "sim")
    prepare([os.path.join(SAMPLE_DATA, "simulated")], out,
            options=PrepareOptions(Preprocess(size=(32, 32)), val_fraction=0.25), workers=1)
    return out


@pytest.fixture(scope="session")
def classifier(simulated, tmp_path_factory) -> str:
    """A tiny dihedral classifier (spiral_cw/acw swapped under reflection), one epoch."""
    from galcnn.stages.train import train

    run = str(tmp_path_factory.mktemp("runs") / "classifier")
    train(simulated, run, tiny(epochs=1))
    return run


@pytest.fixture(scope="session")
def masked(tmp_path_factory) -> str:
    """The simulated sample cutouts at 32 px with their exact masks (HDU MASK)."""
    from galcnn.data.recipe import Preprocess
    from galcnn.stages.prepare import PrepareOptions, prepare

    out = str(tmp_path_factory.mktemp("prep") / "sim-masks")
    prepare([os.path.join(SAMPLE_DATA, "simulated")], out,
            options=PrepareOptions(Preprocess(size=(32, 32)), val_fraction=0.25,
                                   masks="hdu:MASK"), workers=1)
    return out


@pytest.fixture(scope="session")
def unet(masked, tmp_path_factory) -> str:
    """A tiny dihedral U-Net (depth 2), two epochs."""
    from galcnn.stages.train import train

    run = str(tmp_path_factory.mktemp("runs") / "unet")
    train(masked, run, tiny(task="segment", depth=2))
    return run


@pytest.fixture(scope="session")
def field_file(tmp_path_factory) -> str:
    """A 200 x 150 simulated field with a TAN WCS and an OBJECT keyword."""
    from galcnn.data.simulate import simulate_field

    image, _, _, header = simulate_field((200, 150), n_galaxies=6, n_stars=4,
                                         rng=np.random.default_rng(3))
    return write_fits(tmp_path_factory.mktemp("fields") / "field.fits", image, header=header)


def _small_disk(tmp_path, size: str, left: int):
    """A tmpfs of ``size`` mounted in ``tmp_path`` with about ``left`` bytes free (skipped
    where this process may not mount one); yields the mount and unmounts it."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small file system here")
    try:
        with open(mount / ".filler", "wb", buffering=0) as handle:
            try:
                while os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize > left:
                    handle.write(b"\0" * 4096)
            except OSError:
                pass
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture
def nearly_full_disk(tmp_path):
    """A directory on a small file system with about 100 KB left: writes are cut short
    part-way, as on a real disk filling up."""
    yield from _small_disk(tmp_path, "2m", 100 * 1024)


@pytest.fixture
def full_disk(tmp_path):
    """A directory on a tiny file system with no space left (a tmpfs mount; skipped where
    this process may not mount one)."""
    yield from _small_disk(tmp_path, "64k", 0)
