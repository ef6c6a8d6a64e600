"""Tiling: maps independent of the tile size and of where they are held."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from astropy.io import fits
from click.testing import CliRunner

from galcnn.card import ModelCard
from galcnn.checkpoint import save_checkpoint
from galcnn.data.recipe import Preprocess
from galcnn.data.simulate import simulate_field
from galcnn.models import create_model
from galcnn.cli import cli
from galcnn.stages.segment import SegmentError, SegmentOptions, segment, tiling

from helpers import write_fits


def test_tile_size_does_not_change_the_result(unet, field_file, tmp_path):
    small = segment(unet, [field_file], str(tmp_path / "a"), SegmentOptions(tile=128))
    large = segment(unet, [field_file], str(tmp_path / "b"), SegmentOptions(tile=512))
    a = fits.getdata(small.outputs[0], "PROB")
    b = fits.getdata(large.outputs[0], "PROB")
    assert np.abs(a - b).max() < 1e-4
    np.testing.assert_array_equal(fits.getdata(small.outputs[0], "LABELS"),
                                  fits.getdata(large.outputs[0], "LABELS"))


def test_out_of_core_maps_give_the_same_products(unet, field_file, tmp_path, monkeypatch):
    """With every map memory-mapped (probabilities, mask, labels, coverage, flux), all
    products are those of the in-memory run, and no scratch file is left."""
    reference = segment(unet, [field_file], str(tmp_path / "ram"), SegmentOptions(tile=64))
    monkeypatch.setattr(tiling, "IN_MEMORY_BYTES", 1024)
    mapped = segment(unet, [field_file], str(tmp_path / "mm"), SegmentOptions(tile=64))
    for name in ("PROB", "MASK", "LABELS", "COVERAGE"):
        np.testing.assert_array_equal(fits.getdata(reference.outputs[0], name),
                                      fits.getdata(mapped.outputs[0], name))
    assert open(tmp_path / "ram" / "field.cat.csv").read() == \
        open(tmp_path / "mm" / "field.cat.csv").read()
    assert not [n for n in os.listdir(tmp_path / "mm") if n.startswith(".galcnn-scratch")]


def test_large_scratch_arrays_are_memory_mapped(tmp_path, monkeypatch):
    monkeypatch.setattr(tiling, "IN_MEMORY_BYTES", 1000)
    created: list[str] = []
    small = tiling.scratch_array((10, 10), np.int16, str(tmp_path), created)
    large = tiling.scratch_array((100, 100), np.int32, str(tmp_path), created)
    assert not isinstance(small, np.memmap) and isinstance(large, np.memmap)
    assert len(created) == 1 and os.path.getsize(created[0]) == 100 * 100 * 4


@pytest.fixture(scope="module")
def sensitive_unet(tmp_path_factory) -> str:
    """A default-depth (3) three-band U-Net whose convolutions are scaled up, so that its
    maps depend strongly on far context (as a trained one's do): a seam that mixes in
    predictions made without the full receptive field shows at the 1e-2 level."""
    torch.manual_seed(0)
    args = {"n_bands": 3, "n_classes": 4, "depth": 3, "width": 4}
    net = create_model("unet", **args)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.mul_(3.0)
    card = ModelCard(task="segment", classes=["background", "a", "b", "other"], model="unet",
                     model_args=args, cutout_classes=["a", "b"],
                     preprocess=Preprocess(bands=("g", "r", "i"), size=(64, 64)))
    path = str(tmp_path_factory.mktemp("unet") / "sensitive.pt")
    save_checkpoint(path, card, net.state_dict())
    return path


@pytest.fixture(scope="module")
def three_band_field(tmp_path_factory) -> str:
    """A 1024 x 1024 three-band field with a TAN WCS: a mosaic of simulated 256 px fields
    (simulating one frame of this size takes seconds)."""
    rng = np.random.default_rng(1)
    blocks = [[simulate_field((256, 256), n_galaxies=3, n_stars=2, rng=rng) for _ in range(4)]
              for _ in range(4)]
    image = np.block([[block[0] for block in row] for row in blocks])
    header = blocks[0][0][3]
    cube = np.stack([image, image * 1.3 + rng.normal(size=image.shape), image * 0.7])
    return write_fits(tmp_path_factory.mktemp("field") / "field3.fits", cube.astype(np.float32),
                      header=header)


@pytest.mark.slow
def test_tiles_never_change_the_maps_of_a_large_three_band_field(sensitive_unet,
                                                                  three_band_field, tmp_path):
    maps = {}
    for tile in (128, 512):
        result = segment(sensitive_unet, [three_band_field], str(tmp_path / f"t{tile}"),
                         SegmentOptions(tile=tile))
        maps[tile] = fits.getdata(result.outputs[0], "PROB")
        header = fits.getheader(result.outputs[0])
        assert header["HALO"] >= header["RECEPT"] and header["BLEND"] == \
            header["HALO"] - header["RECEPT"]
    assert maps[128].shape == (4, 1024, 1024)
    assert np.abs(maps[128] - maps[512]).max() <= 1e-4


def test_a_halo_smaller_than_the_receptive_radius_is_refused(sensitive_unet, three_band_field,
                                                             tmp_path):
    """Refused before any work, the option named as each caller wrote it: the field in the
    library, the flag on the command line."""
    with pytest.raises(SegmentError, match=r"^halo 16 is smaller than the U-Net's receptive "
                       r"radius \(\d+ px\).*or leave halo out$"):
        segment(sensitive_unet, [three_band_field], str(tmp_path / "s"),
                SegmentOptions(halo=16))
    typed = CliRunner().invoke(cli, ["segment", sensitive_unet, three_band_field, "-o",
                                     str(tmp_path / "s"), "--halo", "16"])
    assert typed.exit_code == 1
    assert typed.output.startswith("Error: --halo 16 is smaller than the U-Net's receptive")
    assert typed.output.rstrip().endswith("or leave --halo out")
    assert not (tmp_path / "s").exists()


@pytest.mark.gpu
def test_tile_size_does_not_change_the_result_on_the_gpu(unet, field_file, tmp_path):
    """In float32 (--no-amp: no TF32 either) the GPU's maps are the tiling-independent maps
    of the CPU, to float rounding."""
    maps = {}
    for name, device, tile in (("cpu", "cpu", 512), ("g64", "cuda", 64), ("g512", "cuda", 512)):
        done = segment(unet, [field_file], str(tmp_path / name),
                       SegmentOptions(tile=tile, device=device, amp=False))
        maps[name] = fits.getdata(done.outputs[0], "PROB")
    assert np.abs(maps["g64"] - maps["g512"]).max() < 1e-4
    assert np.abs(maps["g512"] - maps["cpu"]).max() < 1e-4
