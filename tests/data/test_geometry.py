import numpy as np
import pytest

from galcnn.data.geometry import fit_to_size, rotate_to_size


def test_centre_crop_takes_the_middle():
    image = np.arange(36, dtype=np.float32).reshape(1, 6, 6)
    out = fit_to_size(image, (2, 2))
    np.testing.assert_array_equal(out[0], [[14, 15], [20, 21]])


def test_pad_uses_band_values_and_centres_the_image():
    image = np.ones((2, 2, 2), dtype=np.float32)
    out = fit_to_size(image, (4, 4), pad_values=[-1.0, -2.0])
    assert out.shape == (2, 4, 4)
    np.testing.assert_array_equal(out[0, 1:3, 1:3], 1.0)
    assert out[0, 0, 0] == -1.0 and out[1, 3, 3] == -2.0


def test_resize_keeps_the_field_and_mean_level():
    image = np.full((1, 40, 40), 3.0, dtype=np.float32)
    out = fit_to_size(image, (10, 10), fit="resize")
    assert out.shape == (1, 10, 10)
    np.testing.assert_allclose(out, 3.0, rtol=1e-5)


def test_rotation_by_zero_in_a_large_image_is_a_crop():
    image = np.random.default_rng(0).normal(size=(1, 20, 20)).astype(np.float32)
    out, zoom = rotate_to_size(image, (10, 10), 0.0)
    assert zoom == 1.0
    np.testing.assert_allclose(out, fit_to_size(image, (10, 10)), atol=1e-5)


def test_rotation_leaves_no_empty_corners_and_reports_zoom():
    image = np.ones((1, 32, 32), dtype=np.float32)
    image[:, :, :] += np.linspace(0, 1, 32)[None, None, :]
    out, zoom = rotate_to_size(image, (32, 32), 45.0)
    assert zoom == pytest.approx(np.sqrt(2), rel=1e-3)
    assert out.min() >= 1.0  # every pixel comes from inside the image
    _, small_zoom = rotate_to_size(np.ones((1, 64, 64), np.float32), (32, 32), 45.0)
    assert small_zoom == 1.0  # a large enough input needs no zoom


def test_rotation_by_90_matches_rot90():
    image = np.random.default_rng(1).normal(size=(1, 9, 9)).astype(np.float32)
    out, _ = rotate_to_size(image, (9, 9), 90.0)
    candidates = [np.rot90(image, k, axes=(1, 2)) for k in (1, 3)]
    assert min(np.abs(out - c).max() for c in candidates) < 1e-4


def test_bad_fit_name():
    with pytest.raises(ValueError, match="unknown fit"):
        fit_to_size(np.ones((1, 4, 4)), (2, 2), fit="stretch")
