"""Per-image intensity stretches, recorded as plain parameters so every command applies the same.

The stretches are the ones astronomers already use to look at images: Lupton-style asinh
scaled to the background noise, percentile clip, IRAF's zscale, log and linear (the last four
through :mod:`astropy.visualization`). Statistics come from finite pixels only; NaN stays NaN
so that the recipe (:mod:`galcnn.data.recipe`) decides how bad pixels are filled.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
from astropy.visualization import (AsymmetricPercentileInterval, LinearStretch, LogStretch,
                                   ManualInterval, MinMaxInterval, ZScaleInterval)

from galcnn.choices import STRETCH_CHOICES
from galcnn.data.clipping import clipped_median_and_std
from galcnn.choices import STRETCH_SCOPES as SCOPES

__all__ = ["Stretch", "background_and_noise"]


def background_and_noise(images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Background and noise of each band of each ``(bands, y, x)`` image: the median and the
    standard deviation of the pixels that survive 3-sigma clipping about the median (MAD
    scale, 5 iterations), astropy's ``sigma_clipped_stats(..., stdfunc="mad_std")``.

    NaN pixels are ignored. A flat band (noise 0, as in clipped 8-bit JPEG backgrounds) falls
    back to the plain standard deviation, then to 1, so that no stretch divides by zero. All
    images of one size are measured in one vectorised pass (:mod:`galcnn.data.clipping`),
    with exactly the numbers astropy gives for each image alone.
    """
    flats = [np.asarray(image, dtype=np.float32).reshape(len(image), -1) for image in images]
    results: list = [None] * len(flats)
    by_length: dict[int, list[int]] = {}
    for index, flat in enumerate(flats):
        by_length.setdefault(flat.shape[1], []).append(index)
    for members in by_length.values():  # float32 sums depend on the row length: never pad
        rows = np.concatenate([flats[i] for i in members])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            median, noise = clipped_median_and_std(rows)
            median = np.nan_to_num(median.astype(np.float64), nan=0.0)
            noise = noise.astype(np.float64)
            weak = ~(noise > 0)
            if weak.any():
                noise[weak] = np.nanstd(rows[weak], axis=1)
                noise[~(noise > 0)] = 1.0
        start = 0
        for i in members:
            stop = start + len(flats[i])
            results[i] = (median[start:stop], noise[start:stop])
            start = stop
    return results


@dataclass(frozen=True)
class Stretch:
    """A named stretch and its parameters.

    ``scope="band"`` computes the statistics of each band on its own; ``scope="image"``
    shares them across bands, which keeps colours (for asinh, the colour-preserving form of
    Lupton et al. 2004: every band is scaled by ``asinh(I / (softening * noise)) / I`` of the
    mean background-subtracted intensity ``I``).
    """

    name: str = "auto"
    """A stretch of ``STRETCH_NAMES``, or ``auto``: the task's choice (:meth:`for_task`),
    made by prepare before anything is stretched."""
    scope: str = "image"
    softening: float = 1.0
    """asinh: the linear-to-log transition, in units of the background noise."""
    lower: float = 0.5
    """percentile and log: lower clip percentile."""
    upper: float = 99.5
    """percentile and log: upper clip percentile."""
    contrast: float = 0.25
    """zscale: the IRAF contrast."""
    log_a: float = 1000.0
    """log: ``y = log(a x + 1) / log(a + 1)`` on the clipped [0, 1] values."""
    peak_softening: float = 0.02
    """peak: the asinh linear-to-log transition, as a fraction of the source's peak."""
    floor: float = 3.0
    """peak: pixels less than this many background-noise sigmas above the background become
    0 (the 3-sigma clipping of the MiraBest images); 0 keeps every pixel."""

    def __post_init__(self):
        if self.name not in STRETCH_CHOICES:
            raise ValueError(f"unknown stretch {self.name!r}; choose one of "
                             f"{', '.join(STRETCH_CHOICES)}")
        if self.scope not in SCOPES:
            raise ValueError(f"unknown stretch scope {self.scope!r}; choose one of {', '.join(SCOPES)}")
        if self.softening <= 0:
            raise ValueError(f"asinh softening must be > 0, got {self.softening}")
        if not 0 <= self.lower < self.upper <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= lower < upper <= 100, got "
                             f"{self.lower}, {self.upper}")
        if self.log_a <= 0:
            raise ValueError(f"log stretch parameter a must be > 0, got {self.log_a}")
        if not 0 < self.peak_softening <= 1:
            raise ValueError(f"peak softening must be in (0, 1], got {self.peak_softening}")
        if self.floor < 0:
            raise ValueError(f"peak stretch floor must be >= 0, got {self.floor}")

    def for_task(self, dense: bool) -> "Stretch":
        """``auto`` made concrete: ``peak`` for a classifier's cutouts (a source looks the same
        at any brightness: on MiraBest's faint-to-bright shift test accuracy went from 0.773
        with asinh to 0.819, bench/RESULTS.md), ``asinh`` scaled to the noise for a U-Net's
        fields (``dense``), whose brightest star is no scale for the rest."""
        if self.name != "auto":
            return self
        return replace(self, name="asinh" if dense else "peak")

    def to_dict(self) -> dict:
        return asdict(self)

    def _require_concrete(self) -> None:
        if self.name == "auto":
            raise ValueError("stretch 'auto' is chosen for a task first (Stretch.for_task; "
                             "prepare does it)")

    @classmethod
    def from_dict(cls, values: dict) -> "Stretch":
        known = {f.name for f in fields(cls)}
        values = {"name": "asinh", **values}  # a card written before ``auto`` existed
        return cls(**{k: v for k, v in values.items() if k in known})

    def __call__(self, data: np.ndarray, statistics: dict | None = None) -> np.ndarray:
        """Stretch a float ``(bands, y, x)`` array; returns float32, NaN where the input was.

        ``statistics`` (from :meth:`statistics`) fixes the image statistics instead of measuring
        them on ``data``: how ``segment`` stretches every tile of a large image the same way.
        """
        data = np.asarray(data, dtype=np.float32)
        self._require_concrete()
        if data.ndim != 3:
            raise ValueError(f"expected a (bands, y, x) array, got shape {data.shape}")
        if self.name == "none":
            return data.copy()
        statistics = statistics if statistics is not None else self.statistics(data)
        if self.name in ("asinh", "peak"):
            return self._asinh(data, statistics)
        return np.concatenate([self._interval_stretch(g, limits) for g, limits
                               in zip(self._groups(data), statistics["limits"])]
                              ).astype(np.float32)

    def statistics(self, data: np.ndarray) -> dict:
        """The image statistics the stretch depends on (background, noise, clip limits)."""
        return self.statistics_of([data])[0]

    def statistics_of(self, images: list[np.ndarray]) -> list[dict]:
        """:meth:`statistics` of many images at once (the same numbers, measured together)."""
        images = [np.asarray(image, dtype=np.float32) for image in images]
        self._require_concrete()
        if self.name == "none":
            return [{} for _ in images]
        if self.name not in ("asinh", "peak"):
            return [{"limits": [self._limits(g) for g in self._groups(image)]}
                    for image in images]
        bands = background_and_noise(images)
        if self.scope == "band":
            if self.name == "asinh":
                return [{"median": median.tolist(), "scale": (self.softening * noise).tolist()}
                        for median, noise in bands]
            return [{"median": median.tolist(), **self._peak_numbers(image, median, noise)}
                    for image, (median, noise) in zip(images, bands)]
        intensities = [(image - median.astype(np.float32)[:, None, None]).mean(axis=0)[None]
                       for image, (median, _) in zip(images, bands)]
        if self.name == "asinh":
            return [{"median": median.tolist(), "soft": float(self.softening * noise[0])}
                    for (median, _), (_, noise) in zip(bands, background_and_noise(intensities))]
        stretched = []
        for (median, _), intensity, (_, noise) in zip(bands, intensities,
                                                       background_and_noise(intensities)):
            numbers = self._peak_numbers(intensity, np.zeros(1), noise)
            stretched.append({"median": median.tolist(), "soft": numbers["scale"][0],
                              "floor": numbers["floor"] and numbers["floor"][0],
                              "norm": numbers["norm"]})
        return stretched

    def _peak_numbers(self, image: np.ndarray, median: np.ndarray, noise: np.ndarray) -> dict:
        """The peak stretch's numbers for each band of ``image``: the softening scale
        (``peak_softening`` times the band's brightest pixel above the background; the noise
        when nothing rises above it), the floor (None when off) and the divisor that maps the
        peak to 1."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            peak = np.nanmax(image.reshape(len(image), -1), axis=1) - median
        peak = np.where(np.isfinite(peak) & (peak > noise), peak, noise)
        return {"scale": (self.peak_softening * peak).tolist(),
                "floor": (self.floor * noise).tolist() if self.floor > 0 else None,
                "norm": float(np.arcsinh(1.0 / self.peak_softening))}

    def _groups(self, data: np.ndarray) -> list[np.ndarray]:
        """The arrays that share statistics: the whole image, or each band."""
        return [data] if self.scope == "image" else [data[i:i + 1] for i in range(len(data))]

    def _interval(self):
        if self.name == "linear":
            return MinMaxInterval(), LinearStretch()
        if self.name == "zscale":
            return ZScaleInterval(contrast=self.contrast), LinearStretch()
        stretch = LogStretch(a=self.log_a) if self.name == "log" else LinearStretch()
        return AsymmetricPercentileInterval(self.lower, self.upper), stretch

    def _limits(self, block: np.ndarray) -> tuple[float, float] | None:
        finite = block[np.isfinite(block)]
        if finite.size == 0:
            return None
        low, high = self._interval()[0].get_limits(finite)
        return float(low), float(high)

    def _interval_stretch(self, block: np.ndarray, limits) -> np.ndarray:
        if limits is None:
            return np.full_like(block, np.nan)
        _, stretch = self._interval()
        low, high = limits
        if not high > low:
            out = np.zeros_like(block)
            out[~np.isfinite(block)] = np.nan
            return out
        transform = stretch + ManualInterval(low, high)
        with np.errstate(invalid="ignore"):
            return np.asarray(transform(block, clip=True), dtype=np.float32)

    def _asinh(self, data: np.ndarray, statistics: dict) -> np.ndarray:
        """asinh scaled to the noise, or (``peak``) to the peak with a noise floor and the
        peak mapped to 1."""
        centred = data - np.asarray(statistics["median"], dtype=np.float32)[:, None, None]
        floor, norm = statistics.get("floor"), np.float32(statistics.get("norm", 1.0))
        if self.scope == "band":
            scale = np.asarray(statistics["scale"], dtype=np.float32)[:, None, None]
            if floor is not None:
                centred = np.where(centred < np.asarray(floor, np.float32)[:, None, None],
                                   np.float32(0), centred)
            return (np.arcsinh(centred / scale) / norm).astype(np.float32)
        intensity = centred.mean(axis=0)
        if floor is not None:
            faint = intensity < np.float32(floor)
            centred = np.where(faint[None], np.float32(0), centred)
            intensity = np.where(faint, np.float32(0), intensity)
        soft = np.float32(statistics["soft"])
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(np.abs(intensity) > 1e-12 * soft,
                              np.arcsinh(intensity / soft) / intensity, 1.0 / soft)
        return (centred * (factor / norm)[None]).astype(np.float32)
