"""The preprocessing recipe: one path from an image to a network input."""

from __future__ import annotations

import numpy as np
import pytest

from galcnn.choices import FILL_METHODS, STRETCH_NAMES
from galcnn.data.fitsio import FitsImage
from galcnn.data.recipe import Preprocess
from galcnn.data.stretch import Stretch

from helpers import noise_image


def _image(data: np.ndarray) -> FitsImage:
    return FitsImage(data=data, paths=["x.fits"], hdu=0, extname="PRIMARY", header=None,
                     n_bad=int((~np.isfinite(data)).sum()))


def _with_holes(seed=0) -> np.ndarray:
    data = noise_image((24, 20), seed=seed, bands=2)
    data[0, 3:6, 4:9] = np.nan
    data[1, 0, :] = np.nan
    return data


def test_apply_is_stretch_then_fill_then_fit():
    data = _with_holes()
    recipe = Preprocess(size=(16, 16), stretch=Stretch("asinh"), fill="median")
    stretched = Stretch("asinh")(data)
    medians = [np.median(band[np.isfinite(band)]) for band in stretched]
    out = recipe.apply(data)
    assert out.shape == (2, 16, 16) and out.dtype == np.float32 and np.isfinite(out).all()
    filled = np.where(np.isfinite(stretched), stretched,
                      np.asarray(medians, dtype=np.float32)[:, None, None])
    np.testing.assert_array_equal(out, filled[:, 4:20, 2:18])  # centre crop of 24x20


def test_zero_fill_and_padding_with_band_medians():
    data = _with_holes()
    out = Preprocess(size=(30, 30), stretch=Stretch("linear"), fill="zero").apply(data)
    stretched = Stretch("linear")(data)
    assert out[0, 3 + 3, 4 + 5] == 0.0  # a hole, now zero (pad is 3 rows, 5 columns)
    filled = np.nan_to_num(stretched, nan=0.0)
    np.testing.assert_array_equal(out[:, 3:27, 5:25], filled)
    for band in range(2):
        assert out[band, 0, 0] == np.median(filled[band])


def test_float16_storage_is_what_the_network_sees():
    data = noise_image()[None]
    out = Preprocess(size=(32, 32), stretch=Stretch("asinh"), dtype="float16").apply(data)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, Preprocess(size=(32, 32), stretch=Stretch("asinh")).apply(data).astype(np.float16))


@pytest.mark.parametrize("stretch", STRETCH_NAMES)
@pytest.mark.parametrize("fill", FILL_METHODS)
def test_a_window_with_image_statistics_equals_the_whole_image(stretch, fill):
    """What segment does to tiles is what prepare does to the whole image."""
    data = _with_holes(seed=1)
    recipe = Preprocess(size=(24, 20), stretch=Stretch(stretch), fill=fill)
    context = recipe.window_context(data)
    whole = recipe.apply(data)
    window = recipe.apply_window(data[:, 5:17, 3:15], context)
    np.testing.assert_array_equal(window, whole[:, 5:17, 3:15])


def test_problems_are_one_line_each():
    recipe = Preprocess(bands=("g",), size=(32, 32), max_bad_fraction=0.4)
    assert recipe.problem(_image(noise_image()[None])) is None
    assert recipe.problem(_image(noise_image(bands=3))) == "has 3 band(s), expected 1"
    half = noise_image()[None]
    half[:, :16] = np.nan
    assert recipe.problem(_image(half)).startswith("50% of pixels are NaN")
    assert recipe.problem(_image(np.full((1, 32, 32), np.nan))) == \
        "every pixel is NaN, inf or BLANK"
    assert recipe.problem(_image(noise_image((10, 10))[None])).startswith("too small: 10x10")
    assert recipe.problem(_image(noise_image((40, 40))[None])) is None
    assert "choose one size" in recipe.problem(_image(noise_image((40, 40))[None]),
                                               same_size=True)


def test_round_trip_and_legacy_form():
    recipe = Preprocess(bands=("g", "r"), size=(48, 64), fit="resize",
                        stretch=Stretch("percentile", lower=1, upper=99), fill="zero", hdu="SCI",
                        band_pattern="{id}_{band}.fits", dtype="float16", max_bad_fraction=0.3)
    assert Preprocess.from_dict(recipe.to_dict()) == recipe
    legacy = {"size": [48, 64], "fit": "resize", "stretch": recipe.stretch.to_dict(),
              "fill": "zero", "hdu": "SCI", "augment": "none", "copies": 0, "dtype": "float16",
              "max_bad_fraction": 0.3, "val_fraction": 0.15}
    assert Preprocess.from_legacy(legacy, bands=["g", "r"], size=[48, 64],
                                  band_pattern="{id}_{band}.fits") == recipe


def test_differences_name_what_makes_inputs_differ():
    model = Preprocess(bands=("0",), size=(32, 32), stretch=Stretch("asinh"))
    assert model.differences(Preprocess(bands=("x",), size=(32, 32), hdu=1,
                                        stretch=Stretch("asinh"))) == []
    found = model.differences(Preprocess(bands=("0", "1"), size=(64, 64),
                                         stretch=Stretch("linear"), fill="zero"))
    assert found == ["2 band(s) instead of 1", "size 64x64 instead of 32x32",
                     "stretch linear instead of asinh", "--fill zero instead of median"]
    softer = model.differences(Preprocess(bands=("0",), size=(32, 32),
                                          stretch=Stretch("asinh", softening=2.0)))
    assert softer == ["stretch asinh (softening=2.0) instead of asinh"]


def test_for_task_makes_the_auto_stretch_concrete_and_bins_large_classifier_cutouts():
    auto = Preprocess()
    assert auto.for_task((96, 96), dense=False) == Preprocess(stretch=Stretch("peak"))
    binned = auto.for_task((150, 150), dense=False)
    assert (binned.size, binned.fit, binned.stretch.name) == ((75, 75), "resize", "peak")
    assert auto.for_task((97, 300), dense=False).size == (24, 75)
    assert auto.for_task((150, 150), dense=True) == Preprocess(stretch=Stretch("asinh"))
    chosen = Preprocess(size=(150, 150), stretch=Stretch("log"))
    assert chosen.for_task((150, 150), dense=False) == chosen


def test_invalid_values_are_refused():
    for bad in ({"fit": "stretchy"}, {"fill": "mean"}, {"dtype": "int8"}, {"size": (2, 2)},
                {"max_bad_fraction": 0}):
        with pytest.raises(ValueError):
            Preprocess(**bad)
    with pytest.raises(ValueError, match="no size yet"):
        Preprocess().apply(noise_image()[None])
    with pytest.raises(ValueError, match="stretch 'auto' is chosen for a task first"):
        Preprocess(size=(32, 32)).apply(noise_image()[None])


def test_reading_rules_override_only_what_a_command_gives():
    recipe = Preprocess(size=(8, 8), hdu=1, bands=("g",), stretch=Stretch("asinh"))
    assert recipe.reading() == recipe
    assert recipe.reading(hdu="SCI", bands=["r"]) == Preprocess(
        size=(8, 8), hdu="SCI", bands=("r",), stretch=Stretch("asinh"))
