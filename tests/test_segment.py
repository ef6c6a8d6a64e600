"""Masks, U-Net training and ``galcnn segment``: outputs, tiling, catalogues, bad input."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner

from galcnn.checkpoint import load_checkpoint
from galcnn.cli import cli
from galcnn.data.dataset import PreparedDataset
from galcnn.data.masks import (MASK_CENTRAL, MASK_OTHER, derive_mask, drop_small, mask_to_target,
                          segmentation_classes)
from galcnn.models import GroupPooled, create_model
from galcnn.data.recipe import Preprocess
from galcnn.stages.prepare import PrepareOptions, prepare
from galcnn.stages.segment import SegmentOptions, segment, tiling
from galcnn.data.simulate import simulate_cutout, simulate_field
from galcnn.stages.train import TrainError, TrainOptions, train

from conftest import SAMPLE_DATA, write_fits


@pytest.fixture(scope="module")
def masked(tmp_path_factory):
    """The simulated sample cutouts at 32 px with their exact masks (HDU MASK)."""
    out = str(tmp_path_factory.mktemp("prep") / "sim-masks")
    prepare([os.path.join(SAMPLE_DATA, "simulated")], out,
            options=PrepareOptions(Preprocess(size=(32, 32)), val_fraction=0.25, masks="hdu:MASK"),
            workers=1)
    return out


@pytest.fixture(scope="module")
def unet(masked, tmp_path_factory):
    run = str(tmp_path_factory.mktemp("runs") / "unet")
    train(masked, run, TrainOptions(task="segment", width=8, depth=2, epochs=2, batch_size=16,
                                    warmup_epochs=0.5))
    return run


@pytest.fixture(scope="module")
def field_file(tmp_path_factory):
    """A 200 x 150 simulated field with a TAN WCS and an OBJECT keyword."""
    image, _, _, header = simulate_field((200, 150), n_galaxies=6, n_stars=4,
                                         rng=np.random.default_rng(3))
    path = tmp_path_factory.mktemp("fields") / "field.fits"
    return write_fits(path, image, header=header)


def test_derive_mask_finds_the_central_object_and_neighbours():
    cutout = simulate_cutout("elliptical", size=64, snr=40, n_neighbours=2,
                             rng=np.random.default_rng(1))
    mask = derive_mask(cutout.image)
    assert mask[32, 32] == MASK_CENTRAL
    exact = cutout.mask == MASK_CENTRAL
    derived = mask == MASK_CENTRAL
    assert (exact & derived).sum() / (exact | derived).sum() > 0.6
    if (cutout.mask == MASK_OTHER).any():
        assert (mask == MASK_OTHER).any()
    assert derive_mask(np.random.default_rng(0).normal(size=(1, 48, 48))).max() <= MASK_OTHER


def test_pure_noise_has_no_central_object():
    noise = np.random.default_rng(5).normal(size=(1, 64, 64)).astype(np.float32)
    assert (derive_mask(noise, nsigma=4.0) == MASK_CENTRAL).sum() == 0


def test_mask_to_target_and_drop_small():
    masks = np.array([[[0, 1, 2]], [[1, 0, 2]]], dtype=np.uint8)
    target = mask_to_target(masks, np.array([0, 2]), 3)
    assert target.tolist() == [[[0, 1, 4]], [[3, 0, 4]]]
    assert segmentation_classes(["a", "b"]) == ["background", "a", "b", "other"]
    labels = np.array([[1, 1, 0, 2], [1, 0, 0, 0], [0, 0, 3, 3]], dtype=np.int32)
    assert drop_small(labels, 2).tolist() == [[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 2, 2]]


def test_prepare_stores_given_masks_with_the_same_geometry(masked):
    data = PreparedDataset(masked)
    assert data.has_masks and data.metadata["masks"]["source"] == "hdu:MASK"
    row = data.rows[0]
    with fits.open(row["file"]) as hdul:
        full = hdul["MASK"].data
    start = (full.shape[0] - 32) // 2
    np.testing.assert_array_equal(data.masks([0])[0], full[start:start + 32, start:start + 32])


def test_missing_mask_hdu_is_reported_per_file(tmp_path):
    good = simulate_cutout("elliptical", size=32, rng=np.random.default_rng(0))
    write_fits(tmp_path / "in" / "a" / "x.fits", hdus=[fits.PrimaryHDU(good.image[0]),
                                                      fits.ImageHDU(good.mask, name="MASK")])
    write_fits(tmp_path / "in" / "b" / "y.fits", good.image[0])
    write_fits(tmp_path / "in" / "b" / "z.fits", hdus=[fits.PrimaryHDU(good.image[0]),
                                                      fits.ImageHDU(good.mask[:5], name="MASK")])
    result = prepare([str(tmp_path / "in")], str(tmp_path / "out"), workers=1,
                     options=PrepareOptions(masks="hdu:MASK", val_fraction=0))
    problems = dict((os.path.basename(f), p) for f, p in result.failures)
    assert problems["y.fits"] == "has no mask HDU 'MASK'"
    assert "has shape (5, 32)" in problems["z.fits"]
    assert result.n_samples == 1


def test_unet_any_size_and_equivariant_pooling():
    net = create_model("unet", n_bands=2, n_classes=3, depth=2, width=4)
    model = GroupPooled(net, [(k, f) for f in (False, True) for k in range(4)]).eval()
    for shape in ((17, 23), (5, 4), (64, 64)):
        assert model(torch.randn(1, 2, *shape)).shape == (1, 3, *shape)
    x = torch.randn(1, 2, 24, 24)
    with torch.no_grad():
        rotated = model(torch.rot90(x, 1, dims=(-2, -1)))
        torch.testing.assert_close(rotated, torch.rot90(model(x), 1, dims=(-2, -1)),
                                   atol=1e-5, rtol=1e-4)


def test_unet_receptive_radius_bounds_the_influence():
    net = create_model("unet", n_bands=1, n_classes=2, depth=3, width=4).eval()
    x = torch.randn(1, 1, 192, 192, requires_grad=True)
    net(x)[0, :, 96, 96].sum().backward()
    touched = (x.grad[0, 0].abs() > 0).nonzero()
    reach = int((touched - 96).abs().max())
    assert reach <= net.receptive_radius() and reach > net.receptive_radius() // 2


def test_train_segment_writes_a_unet_run(unet, masked):
    card = load_checkpoint(unet)["card"]
    assert card.task == "segment" and card.model == "unet"
    assert card.classes == ["background", "edge_on", "elliptical", "spiral_acw", "spiral_cw",
                            "other"]
    assert card.symmetry == "dihedral" and card.mirror_swap == [0, 1, 2, 4, 3, 5]
    metrics = json.load(open(os.path.join(unet, "metrics.json")))
    assert set(metrics["per_class"]) == set(card.classes)
    assert metrics["n_pixels"] == 32 * 32 * 32 and 0 <= metrics["mean_iou"] <= 1
    with open(os.path.join(unet, "metrics.csv")) as handle:
        assert "val_mean_iou" in next(csv.reader(handle))


def test_train_segment_needs_masks(tmp_path):
    plain = str(tmp_path / "plain")
    prepare([os.path.join(SAMPLE_DATA, "simulated")], plain,
            options=PrepareOptions(Preprocess(size=(16, 16))), workers=1)
    with pytest.raises(TrainError, match="holds no masks; prepare it with --masks auto"):
        train(plain, str(tmp_path / "run"), TrainOptions(task="segment", epochs=1))
    with pytest.raises(TrainError, match="--arch unet cannot classify"):
        train(plain, str(tmp_path / "run"), TrainOptions(arch="unet", epochs=1))


def test_segment_output_keeps_header_and_wcs(unet, field_file, tmp_path):
    result = segment(unet, [field_file], str(tmp_path / "seg"), SegmentOptions(tile=64))
    assert result.n_images == 1 and result.failures == []
    out = str(tmp_path / "seg" / "field.seg.fits")
    with fits.open(out) as hdul, fits.open(field_file) as original:
        assert [h.name for h in hdul] == ["PRIMARY", "PROB", "MASK", "LABELS", "COVERAGE"]
        head = hdul[0].header
        assert head["OBJECT"] == "galcnn simulated field" and head["CRVAL1"] == 150.1
        assert head["TILE"] == 64 and head["HALO"] >= head["RECEPT"] and len(head["MODELSHA"]) == 16
        prob = hdul["PROB"].data
        assert prob.shape == (6, 200, 150) and hdul["PROB"].header["CLASS5"] == "other"
        np.testing.assert_allclose(prob.sum(0), 1.0, atol=1e-4)
        assert hdul["LABELS"].data.dtype.kind == "i" and hdul["LABELS"].data.shape == (200, 150)
        assert hdul["COVERAGE"].data.min() >= 1
        assert hdul["MASK"].header["CTYPE1"] == original[0].header["CTYPE1"]
        np.testing.assert_array_equal(original[0].data, fits.getdata(field_file))


def test_tile_size_does_not_change_the_result(unet, field_file, tmp_path):
    small = segment(unet, [field_file], str(tmp_path / "a"), SegmentOptions(tile=128))
    large = segment(unet, [field_file], str(tmp_path / "b"), SegmentOptions(tile=512))
    a = fits.getdata(small.outputs[0], "PROB")
    b = fits.getdata(large.outputs[0], "PROB")
    assert np.abs(a - b).max() < 1e-4
    np.testing.assert_array_equal(fits.getdata(small.outputs[0], "LABELS"),
                                  fits.getdata(large.outputs[0], "LABELS"))


def test_memory_mapped_scratch_gives_the_same_maps(unet, field_file, tmp_path, monkeypatch):
    reference = segment(unet, [field_file], str(tmp_path / "ram"), SegmentOptions(tile=64))
    monkeypatch.setattr(tiling, "IN_MEMORY_BYTES", 1024)
    mapped = segment(unet, [field_file], str(tmp_path / "mm"), SegmentOptions(tile=64))
    np.testing.assert_array_equal(fits.getdata(reference.outputs[0], "PROB"),
                                  fits.getdata(mapped.outputs[0], "PROB"))
    assert not [n for n in os.listdir(tmp_path / "mm") if n.startswith(".galcnn-scratch")]


def test_catalogue_rows_match_the_label_map(unet, field_file, tmp_path):
    segment(unet, [field_file], str(tmp_path / "seg"), SegmentOptions(threshold=0.3))
    labels = fits.getdata(tmp_path / "seg" / "field.seg.fits", "LABELS")
    table = Table.read(tmp_path / "seg" / "field.cat.csv", format="ascii.csv")
    assert len(table) == labels.max()
    area = np.bincount(labels.ravel())
    for row in table:
        assert row["area"] == area[row["id"]]
        ys, xs = np.nonzero(labels == row["id"])
        assert (row["bbox_xmin"], row["bbox_xmax"]) == (xs.min(), xs.max())
        assert (row["bbox_ymin"], row["bbox_ymax"]) == (ys.min(), ys.max())
        assert abs(row["x"] - xs.mean()) < 1e-6 and 149 < row["ra"] < 151
        beliefs = [row[f"p_{c}"] for c in ("edge_on", "elliptical", "spiral_acw", "spiral_cw",
                                           "other")]
        assert row["predicted"] == ["edge_on", "elliptical", "spiral_acw", "spiral_cw",
                                    "other"][int(np.argmax(beliefs))]


def test_tiny_odd_images_and_cubes(unet, tmp_path):
    write_fits(tmp_path / "in" / "tiny.fits", np.random.default_rng(0).normal(size=(7, 10)))
    write_fits(tmp_path / "in" / "cube.fits", np.zeros((2, 20, 20), np.float32))
    result = segment(unet, [str(tmp_path / "in")], str(tmp_path / "seg"))
    assert result.n_images == 1
    assert fits.getdata(tmp_path / "seg" / "tiny.seg.fits", "PROB").shape == (6, 7, 10)
    assert result.failures == [(str(tmp_path / "in" / "cube.fits") + "[0]",
                                "HDU 0 has 2 band(s); the model needs 1")]


def test_cli_bad_inputs_resume_and_exit_status(unet, field_file, tmp_path):
    broken = tmp_path / "broken.fits"
    broken.write_bytes(b"SIMPLE  =                    T" + b" " * 100)
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    out = str(tmp_path / "seg")
    args = ["segment", unet, field_file, str(broken), str(empty), "-o", out, "--overlay"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 3, first.output
    assert "empty.fits: empty file (0 bytes)" in first.output
    with open(os.path.join(out, "segment.csv")) as handle:
        rows = list(csv.DictReader(handle))
    statuses = {os.path.basename(r["file"]): r["status"] for r in rows}
    assert statuses["field.fits"] == "ok" and statuses["empty.fits"] == "empty file (0 bytes)"
    assert statuses["broken.fits"] != "ok"
    assert os.path.getsize(os.path.join(out, "field.png")) > 0
    again = CliRunner().invoke(cli, ["segment", unet, field_file, "-o", out])
    assert again.exit_code == 0 and "skipped (existing): 1" in again.output
    missing_model = CliRunner().invoke(cli, ["segment", os.path.join(unet, "nothing.pt"),
                                             field_file, "-o", out])
    assert missing_model.exit_code == 2


def test_segment_refuses_a_classifier(tmp_path):
    from galcnn.stages.segment import SegmentError

    data = str(tmp_path / "prep")
    prepare([os.path.join(SAMPLE_DATA, "simulated")], data,
            options=PrepareOptions(Preprocess(size=(16, 16))), workers=1)
    run = str(tmp_path / "cls")
    train(data, run, TrainOptions(width=4, epochs=1, batch_size=32))
    with pytest.raises(SegmentError, match="a classify model; segment needs a U-Net"):
        segment(run, [data], str(tmp_path / "seg"))
