"""Reading prepared datasets: gathers, masks, pixel targets, and sets of galcnn 0.1."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from galcnn.data.dataset import PreparedDataset, is_prepared_dataset


def test_batch_gathers_rows_in_the_asked_order(simulated):
    data = PreparedDataset(simulated)
    order = [5, 0, 17, 3]
    images, labels = data.batch(order)
    assert images.shape == (4, 1, 32, 32) and images.dtype == np.float32
    for position, index in enumerate(order):
        np.testing.assert_array_equal(images[position], data.image(index))
        assert labels[position] == data.rows[index]["label_index"]
    assert len(PreparedDataset(simulated, "val")) + len(PreparedDataset(simulated, "train")) \
        == len(data)


def test_masks_and_pixel_targets(masked):
    data = PreparedDataset(masked, "val")
    masks = data.masks([0, 1])
    targets = data.pixel_targets([0, 1])
    assert masks.shape == targets.shape == (2, 32, 32)
    label = data.rows[0]["label_index"]
    assert set(np.unique(targets[0][masks[0] == 1])) == {1 + label}
    assert set(np.unique(targets[0][masks[0] == 2])) <= {1 + len(data.classes)}
    assert (targets[0][masks[0] == 0] == 0).all()


def test_recipe_of_a_galcnn_0_1_dataset(simulated, tmp_path):
    """Datasets written before recipes existed keep loading, with the same recipe."""
    old = str(tmp_path / "old")
    os.makedirs(old)
    os.symlink(os.path.join(simulated, "images"), os.path.join(old, "images"))
    os.symlink(os.path.join(simulated, "manifest.csv"), os.path.join(old, "manifest.csv"))
    meta = json.load(open(os.path.join(simulated, "metadata.json")))
    recipe = meta.pop("preprocess")
    meta.update(format_version=1, bands=recipe["bands"], n_bands=1, size=recipe["size"],
                dtype="float32", band_pattern=None, stretch=recipe["stretch"],
                options={**meta["options"], "size": recipe["size"], "fit": "crop",
                         "stretch": recipe["stretch"], "fill": "median", "hdu": "auto",
                         "max_bad_fraction": 0.5, "dtype": "float32"})
    json.dump(meta, open(os.path.join(old, "metadata.json"), "w"))
    assert PreparedDataset(old).preprocess == PreparedDataset(simulated).preprocess


def test_not_a_dataset(tmp_path):
    assert not is_prepared_dataset(str(tmp_path))
    with pytest.raises(ValueError, match="not a prepared galcnn dataset"):
        PreparedDataset(str(tmp_path))
