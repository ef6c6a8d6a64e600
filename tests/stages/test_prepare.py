"""``prepare``: FITS cutouts in, a complete prepared dataset out (library level)."""

from __future__ import annotations

import csv
import json
import os
import shutil

import numpy as np
import pytest
from astropy.io import fits

from galcnn.data.dataset import MANIFEST_COLUMNS, PreparedDataset
from galcnn.data.fitsio import read_image
from galcnn.data.recipe import Preprocess
from galcnn.data.stretch import Stretch
from galcnn.data.simulate import simulate_cutout
from galcnn.stages.prepare import PrepareError, PrepareOptions, prepare

from helpers import SAMPLE_DATA, manifest_rows, metadata, noise_image, write_fits


def test_class_directories_give_a_complete_dataset(class_dirs, tmp_path):
    out = str(tmp_path / "prepared")
    result = prepare([str(class_dirs)], out, workers=1,
                     options=PrepareOptions(val_fraction=0.25, seed=3))
    assert result.classes == ["a", "b"] and result.n_samples == 8 and not result.failures
    rows = manifest_rows(out)
    assert list(rows[0]) == list(MANIFEST_COLUMNS)
    assert [r["split"] for r in rows].count("val") == 2
    assert {r["label"] for r in rows if r["split"] == "val"} == {"a", "b"}  # stratified
    assert {r["id"] for r in rows} == {f"x{i}" for i in range(4)}  # names, without folder
    assert len({r["file"] for r in rows}) == 8
    meta = metadata(out)
    recipe = meta["preprocess"]
    assert meta["classes"] == ["a", "b"] and recipe["size"] == [32, 32] and recipe["bands"] == ["0"]
    assert recipe["stretch"]["name"] == "peak" and meta["labels"]["source"] == "directories"
    assert meta["class_counts"]["train"] == {"a": 3, "b": 3}
    assert meta["galcnn_version"] and recipe["fit"] == "crop" and meta["options"]["seed"] == 3
    assert os.listdir(tmp_path) == ["cutouts", "prepared"]  # no temporary directory left

    dataset = PreparedDataset(out)
    shard = np.load(os.path.join(out, rows[0]["shard"]), mmap_mode="r")
    assert isinstance(shard, np.memmap) and shard.shape[1:] == (1, 32, 32)
    image, label = dataset[0]
    source = read_image(rows[0]["file"])
    expected = Preprocess(size=(32, 32), stretch=Stretch("peak")).apply(source.data)
    np.testing.assert_allclose(image, expected, rtol=1e-6)
    assert label == (0 if rows[0]["label"] == "a" else 1)
    assert len(PreparedDataset(out, split="val")) == 2


def test_augmented_copies_only_for_training(class_dirs, tmp_path):
    out = str(tmp_path / "aug")
    options = PrepareOptions(augment="dihedral", copies=3, val_fraction=0.25)
    prepare([str(class_dirs)], out, workers=1, options=options)
    rows = manifest_rows(out)
    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    assert len(train) == 6 * 4 and len(val) == 2
    assert {r["transform"] for r in val} == {"identity"}
    by_id = {}
    for r in train:
        by_id.setdefault(r["file"], []).append(r["transform"])
    for transforms in by_id.values():
        assert transforms[0] == "identity" and len(set(transforms)) == 4
    dataset = PreparedDataset(out)
    first = [i for i, r in enumerate(dataset.rows) if r["file"] == train[0]["file"]]
    from galcnn.data.augment import parse_transform

    base = dataset.image(first[0])
    for index in first[1:]:
        g = parse_transform(dataset.rows[index]["transform"])
        np.testing.assert_array_equal(dataset.image(index), g(base))


def test_arbitrary_rotation_copies(class_dirs, tmp_path):
    out = str(tmp_path / "rot")
    prepare([str(class_dirs)], out, workers=1,
            options=PrepareOptions(augment="rotate", copies=2, preprocess=Preprocess(size=(16, 16))))
    transforms = [r["transform"] for r in manifest_rows(out) if r["transform"] != "identity"]
    assert transforms and all(t.startswith("rotate:") for t in transforms)
    assert PreparedDataset(out).image(1).shape == (1, 16, 16)


def test_explicit_size_accepts_other_shapes_and_resize(tmp_path):
    write_fits(tmp_path / "in" / "a.fits", noise_image((32, 32)))
    write_fits(tmp_path / "in" / "b.fits", noise_image((48, 40)))
    out = str(tmp_path / "out")
    result = prepare([str(tmp_path / "in")], out, no_labels=True, workers=1,
                     options=PrepareOptions(Preprocess(size=(24, 24), fit="resize")))
    assert result.n_samples == 2 and not result.failures
    assert PreparedDataset(out).image(1).shape == (1, 24, 24)


def test_large_cutouts_are_binned_without_a_chosen_size(tmp_path, caplog):
    """Without --size, 200 px cutouts are binned 3x (200 // 3 = 66 px), the
    field kept; a chosen size, or one of 96 px or less, is left alone."""
    for name in ("a", "b"):
        write_fits(tmp_path / "in" / f"{name}.fits", noise_image((200, 200)))
    out = str(tmp_path / "out")
    with caplog.at_level("INFO", logger="galcnn"):
        prepare([str(tmp_path / "in")], out, no_labels=True, workers=1)
    recipe = PreparedDataset(out).preprocess
    assert (recipe.size, recipe.fit) == ((66, 66), "resize")
    assert PreparedDataset(out).image(0).shape == (1, 66, 66)
    assert "200x200 pixels are binned to 66x66" in caplog.text


def test_workers_do_not_change_the_result(class_dirs, tmp_path):
    options = PrepareOptions(augment="rot90", copies=2, val_fraction=0.25)
    prepare([str(class_dirs)], str(tmp_path / "one"), workers=1, options=options)
    prepare([str(class_dirs)], str(tmp_path / "two"), workers=2, options=options)
    one, two = PreparedDataset(str(tmp_path / "one")), PreparedDataset(str(tmp_path / "two"))
    assert [r["transform"] for r in one.rows] == [r["transform"] for r in two.rows]
    for i in range(len(one)):
        np.testing.assert_array_equal(one.image(i), two.image(i))


def test_classes_without_labels_is_an_error(tmp_path):
    write_fits(tmp_path / "a.fits", noise_image())
    with pytest.raises(PrepareError, match="--classes needs labels"):
        prepare([str(tmp_path / "a.fits")], str(tmp_path / "o"), classes=["x"], workers=1)


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


@pytest.mark.slow
def test_gz1_reads_without_options(shared_data, tmp_path):
    out = str(tmp_path / "gz1")
    result = prepare([os.path.join(shared_data, "gz1")], out)
    assert not result.failures
    meta = json.load(open(os.path.join(out, "metadata.json")))
    with open(os.path.join(shared_data, "gz1", "labels.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = {}
    for row in rows:
        expected[row["label"]] = expected.get(row["label"], 0) + 1
    totals = {c: meta["class_counts"]["train"][c] + meta["class_counts"]["val"][c]
              for c in meta["classes"]}
    assert totals == expected
    assert meta["preprocess"]["bands"] == ["g", "r", "i"]
    assert meta["preprocess"]["size"] == [64, 64]
    dataset = PreparedDataset(out, split="val")
    image, label = dataset[0]
    assert image.shape == (3, 64, 64) and np.isfinite(image).all()
    assert 0 <= label < 6


@pytest.mark.slow
def test_mirabest_confident_fr_classes(shared_data, tmp_path):
    out = str(tmp_path / "mb")
    result = prepare([os.path.join(shared_data, "mirabest")], out, where={"confident": "1"},
                     classes=["FRI", "FRII"], options=PrepareOptions(Preprocess(size=(128, 128))))
    assert not result.failures and result.classes == ["FRI", "FRII"]
    assert result.dropped_classes.get("hybrid", 0) > 0
    with open(os.path.join(shared_data, "mirabest", "labels.csv"), newline="") as handle:
        catalogue = {os.path.basename(r["file"]): r for r in csv.DictReader(handle)}
    dataset = PreparedDataset(out)
    assert {r["hdu"] for r in dataset.rows} == {1}
    for row in dataset.rows[:50]:
        entry = catalogue[os.path.basename(row["file"])]
        assert entry["confident"] == "1" and entry["label"] == row["label"]
        # the cutout centre from its WCS is the catalogue position (to a pixel, 1.8")
        assert row["ra"] == pytest.approx(float(entry["ra"]), abs=0.002)
        assert row["dec"] == pytest.approx(float(entry["dec"]), abs=0.002)
    assert dataset.image(0).shape == (1, 128, 128)


def test_constant_images_are_refused_for_training(class_dirs, tmp_path):
    first = sorted(os.listdir(class_dirs))[0]
    write_fits(class_dirs / first / "blank.fits", np.zeros((32, 32), dtype=np.float32))
    result = prepare([str(class_dirs)], str(tmp_path / "out"), workers=1)
    assert [(os.path.basename(p), m) for p, m in result.failures] == [
        ("blank.fits", "constant image (every usable pixel is 0)")]


def _labelled(cutouts) -> str:
    """The flat folder of simulated cutouts with a labels.csv naming each one's class."""
    names = sorted(os.listdir(cutouts))
    (cutouts / "labels.csv").write_text("file,label\n" + "".join(
        f"{name},{name.split('.')[0].rsplit('_', 1)[0]}\n" for name in names))
    return str(cutouts)


def test_mirrored_copies_of_a_mirror_pair_class_carry_the_partners_label(cutouts, tmp_path):
    """A reflection turns a clockwise spiral into an anticlockwise one: its stored copy is
    labelled so (it kept spiral_cw before), with the pairs recorded in the set."""
    out = str(tmp_path / "prepared")
    result = prepare([_labelled(cutouts)], out, workers=1,
                     options=PrepareOptions(augment="dihedral", copies=3, val_fraction=0.0))
    assert metadata(out)["mirror_pairs"] == [["spiral_cw", "spiral_acw"]]
    data = PreparedDataset(out)
    assert data.mirror_pairs == [("spiral_cw", "spiral_acw")] and data.has_reflected_copies
    original = {r["id"]: r["label"] for r in data.rows if r["transform"] == "identity"}
    mirrored = [r for r in data.rows if r["transform"].startswith("flip")]
    assert mirrored
    for row in mirrored:
        expected = {"spiral_cw": "spiral_acw", "spiral_acw": "spiral_cw"}.get(
            original[row["id"]], original[row["id"]])
        assert row["label"] == expected, row
        assert row["label_index"] == data.classes.index(expected)
    turned = [r for r in data.rows if r["transform"].startswith("rot")]
    assert all(r["label"] == original[r["id"]] for r in turned)
    counted = sum(result.class_counts["train"].values())
    assert result.class_counts["train"]["spiral_cw"] == sum(
        r["label"] == "spiral_cw" for r in data.rows) and counted == len(data.rows)


def test_mirror_pairs_can_be_named_or_turned_off(cutouts, tmp_path):
    kept = str(tmp_path / "kept")
    prepare([_labelled(cutouts)], kept, workers=1,
            options=PrepareOptions(augment="dihedral", copies=2, mirror_pairs=()))
    rows = manifest_rows(kept)
    assert metadata(kept)["mirror_pairs"] == []
    assert all(r["label"] == r["id"].rsplit("_", 1)[0] for r in rows)
    with pytest.raises(PrepareError, match="--mirror-pairs spiral_cw:spiral: both must be "
                                           "classes"):
        prepare([str(cutouts)], str(tmp_path / "bad"), workers=1,
                options=PrepareOptions(mirror_pairs=(("spiral_cw", "spiral"),)))


def test_each_input_folder_keeps_its_own_labels(tmp_path):
    """Two folders each with its labels.csv lost every label ("No labels"); a labelled GZ1
    folder beside class folders gave every GZ1 galaxy the class 'cutouts'."""
    gz1 = os.path.join(SAMPLE_DATA, "gz1")
    other = tmp_path / "other_gz1"
    shutil.copytree(gz1, other)
    both = prepare([gz1, str(other)], str(tmp_path / "both"), workers=1)
    expected = sorted({r["label"] for r in csv.DictReader(open(os.path.join(gz1, "labels.csv")))})
    assert both.classes == expected and both.n_unlabelled == 0 and both.n_sources == 120
    assert both.label_source == (f"table:{os.path.join(gz1, 'labels.csv')}; "
                                 f"table:{other / 'labels.csv'}")
    mixed = prepare([gz1, os.path.join(SAMPLE_DATA, "simulated")], str(tmp_path / "mixed"),
                    workers=1, options=PrepareOptions(Preprocess(size=(48, 48), bands=())),
                    classes=None)
    rows = manifest_rows(str(tmp_path / "mixed"))
    labels = {r["id"]: r["label"] for r in rows}
    gz1_labels = {r["file"].split("/")[-1].split(".")[0]: r["label"]
                  for r in csv.DictReader(open(os.path.join(gz1, "labels.csv")))}
    assert "cutouts" not in mixed.classes
    assert all(labels[name] == label for name, label in gz1_labels.items() if name in labels)
    assert {"spiral_cw", "edge_on"} <= set(mixed.classes)


def test_one_class_folder_is_one_class_and_said(tmp_path, caplog):
    root = tmp_path / "cutouts"
    shutil.copytree(os.path.join(SAMPLE_DATA, "simulated", "elliptical"), root / "elliptical")
    with caplog.at_level("WARNING", logger="galcnn"):
        result = prepare([str(root)], str(tmp_path / "out"), workers=1)
    assert result.classes == ["elliptical"] and result.label_source == "directories"
    assert "the labels name one class only (elliptical): a classifier needs two or more" \
        in caplog.text


def test_a_filter_that_keeps_no_row_is_named_with_the_values_it_could_take(tmp_path):
    mirabest = os.path.join(SAMPLE_DATA, "mirabest")
    with pytest.raises(PrepareError) as raised:
        prepare([mirabest], str(tmp_path / "out"), workers=1, where={"confident": "yes"})
    assert str(raised.value) == (f"{os.path.join(mirabest, 'labels.csv')}: no row passes "
                                 "--where confident=yes (the column holds '1'); nothing "
                                 "to label")
