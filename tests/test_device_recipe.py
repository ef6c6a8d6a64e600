"""The recipe on a torch device (the GPU path of predict), run here on the CPU: the same
statistics, stretch, fill and geometry as the CPU recipe, to float32 rounding."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from galcnn.choices import FILL_METHODS, STRETCH_SCOPES
from galcnn.data.clipping import clipped_median_and_std
from galcnn.data.recipe import Preprocess
from galcnn.data.stretch import Stretch
from galcnn.device_recipe import TORCH, DeviceRecipe
from galcnn.stages.predict import PredictOptions, predict

from helpers import noise_image

CPU = torch.device("cpu")


def _batch(n=6, shape=(40, 36), bands=3, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = np.stack([noise_image(shape, seed=seed + i, bands=bands) * (1 + i) + 5 * i
                       for i in range(n)])
    images[0, 1, 5:9, 3:12] = np.nan
    images[2, :, 0, :] = np.nan
    images[3] += rng.exponential(3.0, size=images[3].shape).astype(np.float32)
    return images.astype(np.float32)


def test_clipped_statistics_on_torch_match_numpy():
    rows = _batch().reshape(18, -1)
    median, std = clipped_median_and_std(rows)
    t_median, t_std = clipped_median_and_std(torch.from_numpy(rows), xp=TORCH)
    np.testing.assert_array_equal(t_median.numpy(), median)  # medians are look-ups
    np.testing.assert_allclose(t_std.numpy(), std, rtol=2e-6)


@pytest.mark.parametrize("stretch", ["peak", "asinh", "linear", "none"])
@pytest.mark.parametrize("scope", STRETCH_SCOPES)
@pytest.mark.parametrize("fill", FILL_METHODS)
@pytest.mark.parametrize("fit,size", [("crop", (32, 32)), ("crop", (48, 30)),
                                      ("crop", (40, 36)), ("resize", (20, 18)),
                                      ("resize", (48, 30))])
def test_the_device_recipe_is_the_recipe(stretch, scope, fill, fit, size):
    images = _batch()
    recipe = Preprocess(bands=("g", "r", "i"), size=size, fit=fit, fill=fill,
                        stretch=Stretch(stretch, scope=scope))
    expected = np.stack(recipe.apply_all(list(images)))
    got = DeviceRecipe(recipe, CPU)(torch.from_numpy(images)).numpy()
    assert got.shape == expected.shape == (6, 3, *size)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-5)


def test_the_default_recipes_run_on_the_device():
    """peak for a classifier (binned by resize when over 96 px, as MiraBest's 150 px
    cutouts), asinh for a U-Net's fields: every default the device recipe takes."""
    classifier = Preprocess().for_task((150, 150), dense=False).with_inputs(("g", "r", "i"),
                                                                            (150, 150))
    assert (classifier.stretch.name, classifier.fit, classifier.size) == \
        ("peak", "resize", (75, 75))
    field = Preprocess().for_task((512, 512), dense=True)
    assert DeviceRecipe.supports(classifier) and DeviceRecipe.supports(field)
    images = _batch(n=4, shape=(150, 150))
    expected = np.stack(classifier.apply_all(list(images)))
    got = DeviceRecipe(classifier, CPU)(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_other_recipes_stay_on_the_cpu():
    for name in ("zscale", "percentile", "log"):
        assert not DeviceRecipe.supports(Preprocess(stretch=Stretch(name)))
    with pytest.raises(ValueError, match="prepared on the CPU"):
        DeviceRecipe(Preprocess(stretch=Stretch("zscale")), CPU)


def test_predict_through_the_device_recipe_gives_the_same_beliefs(classifier, cutouts,
                                                                 tmp_path, monkeypatch):
    """The default (peak) classifier goes through the device recipe when asked: counted."""
    calls = []
    original = DeviceRecipe.__call__
    monkeypatch.setattr(DeviceRecipe, "__call__",
                        lambda self, raw: calls.append(len(raw)) or original(self, raw))
    rows = {}
    for on_device in (False, True):
        out = tmp_path / f"p{on_device}.csv"
        predict(classifier, [str(cutouts)], str(out),
                PredictOptions(device_stretch=on_device, batch_size=5, workers=1))
        with open(out, newline="") as handle:
            rows[on_device] = list(csv.DictReader(handle))
    assert sum(calls) == len(rows[True]) == 12 and len(calls) == 3  # batches of 5, 5, 2
    assert [r["file"] for r in rows[True]] == [r["file"] for r in rows[False]]
    for a, b in zip(rows[True], rows[False]):
        values = [float(a[k]) - float(b[k]) for k in a if k.startswith("p_")]
        assert max(abs(v) for v in values) < 1e-4 and a["predicted"] == b["predicted"]


@pytest.mark.gpu
@pytest.mark.parametrize("stretch", ["peak", "asinh"])
@pytest.mark.parametrize("fit,shape,size", [("crop", (64, 64), (64, 64)),
                                            ("resize", (150, 150), (75, 75)),
                                            ("crop", (200, 180), (192, 192))])
def test_the_device_recipe_on_cuda_is_the_recipe(stretch, fit, shape, size):
    """On CUDA (its radix sort takes rows over 4096 pixels) as on the CPU, to 1e-4."""
    images = _batch(n=16, shape=shape)
    recipe = Preprocess(bands=("g", "r", "i"), size=size, fit=fit, stretch=Stretch(stretch))
    expected = np.stack(recipe.apply_all(list(images)))
    got = DeviceRecipe(recipe, torch.device("cuda"))(torch.from_numpy(images)).cpu().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
