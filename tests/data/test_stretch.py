import numpy as np
import pytest

from galcnn.data.stretch import Stretch, background_and_noise


def _ramp(n=101):
    """Values 0..100 in one band, so percentiles are the values themselves."""
    return np.arange(n, dtype=np.float32).reshape(1, 1, n)


def test_none_passes_values_through():
    data = _ramp()
    np.testing.assert_array_equal(Stretch("none")(data), data)


def test_linear_maps_min_max_to_unit_interval():
    out = Stretch("linear")(_ramp())
    np.testing.assert_allclose(out[0, 0, [0, 25, 100]], [0.0, 0.25, 1.0], atol=1e-6)


def test_percentile_clips_at_the_given_percentiles():
    out = Stretch("percentile", lower=10, upper=90)(_ramp())
    # 10th percentile of 0..100 is 10, 90th is 90: (x - 10) / 80, clipped to [0, 1]
    np.testing.assert_allclose(out[0, 0, [0, 10, 50, 90, 100]], [0, 0, 0.5, 1, 1], atol=1e-6)


def test_log_stretch_formula():
    a = 100.0
    out = Stretch("log", lower=0, upper=100, log_a=a)(_ramp())
    x = 0.5
    assert out[0, 0, 50] == pytest.approx(np.log(a * x + 1) / np.log(a + 1), rel=1e-5)
    assert out[0, 0, 0] == pytest.approx(0.0) and out[0, 0, 100] == pytest.approx(1.0)


def test_zscale_matches_astropy_limits_and_clips():
    from astropy.visualization import ZScaleInterval

    rng = np.random.default_rng(1)
    data = rng.normal(100, 5, (1, 40, 40)).astype(np.float32)
    data[0, :2, :2] = 10000
    low, high = ZScaleInterval(contrast=0.25).get_limits(data.ravel())
    out = Stretch("zscale")(data)
    assert out.max() == 1.0 and out.min() == 0.0
    value = data[0, 20, 20]
    assert out[0, 20, 20] == pytest.approx(np.clip((value - low) / (high - low), 0, 1), abs=1e-5)


def test_asinh_per_band_is_background_and_noise_scaled():
    rng = np.random.default_rng(2)
    data = rng.normal(50.0, 2.0, (2, 50, 50)).astype(np.float32)
    data[1] = data[1] * 10 + 300  # another band, another zero point and noise
    [(median, noise)] = background_and_noise([data])
    out = Stretch("asinh", scope="band", softening=2.0)(data)
    expected = np.arcsinh((data[1, 3, 4] - median[1]) / (2.0 * noise[1]))
    assert out[1, 3, 4] == pytest.approx(expected, rel=1e-5)
    # each band ends up with a background near 0 and a noise near 1/softening
    assert abs(np.median(out[0])) < 0.05 and abs(np.median(out[1])) < 0.05
    assert np.std(out[0]) == pytest.approx(0.5, rel=0.1)


def test_asinh_image_scope_keeps_colour_ratios():
    base = np.zeros((3, 30, 30), dtype=np.float32)
    base += np.random.default_rng(3).normal(0, 1, base.shape).astype(np.float32)
    base[:, 15, 15] += np.array([100.0, 200.0, 400.0], dtype=np.float32)
    out = Stretch("asinh", scope="image")(base)
    [(median, _)] = background_and_noise([base])
    centred = base[:, 15, 15] - median
    ratio_in = centred / centred[0]
    ratio_out = out[:, 15, 15] / out[0, 15, 15]
    np.testing.assert_allclose(ratio_out, ratio_in, rtol=1e-5)


def _source(brightness: float, seed: int = 4) -> np.ndarray:
    """A double source (two Gaussian lobes) on unit noise, ``brightness`` at its peak."""
    y, x = np.mgrid[:64, :64]
    lobes = np.exp(-((x - 20) ** 2 + (y - 32) ** 2) / 18) + \
        0.6 * np.exp(-((x - 44) ** 2 + (y - 32) ** 2) / 18)
    noise = np.random.default_rng(seed).normal(0, 1, (1, 64, 64))
    return (brightness * lobes[None] + noise).astype(np.float32)


@pytest.mark.parametrize("scope", ["image", "band"])
def test_peak_stretch_shows_a_source_the_same_at_any_brightness(scope):
    """Peak to 1, the 3-sigma floor to 0: a source 8 times brighter looks the same above the
    floor, where the noise-scaled asinh shows it brighter everywhere."""
    faint, bright = _source(40.0), _source(320.0)
    peak = Stretch("peak", scope=scope)
    out_faint, out_bright = peak(faint), peak(bright)
    assert out_faint.max() == pytest.approx(1.0, abs=0.02)
    assert out_bright.max() == pytest.approx(1.0, abs=0.01)
    [(median, noise)] = background_and_noise([faint])
    assert (out_faint[faint - median < 3 * noise[0]] == 0).all()
    # the second lobe's peak (0.6 of the first) is stretched alike at both brightnesses
    assert out_faint[0, 32, 44] == pytest.approx(out_bright[0, 32, 44], abs=0.03)
    expected = np.arcsinh(0.6 / 0.02) / np.arcsinh(1 / 0.02)
    assert out_bright[0, 32, 44] == pytest.approx(expected, abs=0.02)
    asinh = Stretch("asinh", scope=scope)
    assert asinh(bright)[0, 32, 44] - asinh(faint)[0, 32, 44] > 1.5
    no_floor = Stretch("peak", scope=scope, floor=0)(faint)
    assert (no_floor < 0).any() and no_floor.max() == pytest.approx(out_faint.max())


def test_nan_stays_nan_and_statistics_ignore_it():
    data = _ramp().copy()
    data[0, 0, 5] = np.nan
    for name in ("linear", "percentile", "zscale", "log", "asinh", "peak", "none"):
        out = Stretch(name, floor=0)(data)
        assert np.isnan(out[0, 0, 5]) and np.isfinite(np.delete(out[0, 0], 5)).all(), name


def test_flat_image_does_not_divide_by_zero():
    flat = np.full((1, 10, 10), 7.0, dtype=np.float32)
    for name in ("linear", "percentile", "zscale", "asinh", "peak"):
        assert np.isfinite(Stretch(name)(flat)).all(), name


def test_parameters_round_trip_and_validation():
    stretch = Stretch("log", scope="band", lower=1, upper=99, log_a=50)
    assert Stretch.from_dict(stretch.to_dict()) == stretch
    with pytest.raises(ValueError, match="unknown stretch"):
        Stretch("sqrtish")
    with pytest.raises(ValueError, match="percentiles"):
        Stretch("percentile", lower=90, upper=10)
    with pytest.raises(ValueError, match="peak softening"):
        Stretch("peak", peak_softening=0)
    with pytest.raises(ValueError, match="floor"):
        Stretch("peak", floor=-1)
