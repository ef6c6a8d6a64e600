"""Per-image intensity stretches, recorded as plain parameters so every command applies the same.

The stretches are the ones astronomers already use to look at images: Lupton-style asinh
scaled to the background noise, percentile clip, IRAF's zscale, log and linear (the last four
through :mod:`astropy.visualization`). Statistics come from finite pixels only; NaN stays NaN
so that the recipe (:mod:`galcnn.data.recipe`) decides how bad pixels are filled.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields

import numpy as np
from astropy.stats import sigma_clipped_stats
from astropy.visualization import (AsymmetricPercentileInterval, LinearStretch, LogStretch,
                                   ManualInterval, MinMaxInterval, ZScaleInterval)

from galcnn.choices import STRETCH_NAMES
from galcnn.choices import STRETCH_SCOPES as SCOPES

__all__ = ["Stretch", "background_and_noise"]


def background_and_noise(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sigma-clipped median and robust (MAD) noise of each band of ``(bands, y, x)`` data.

    NaN pixels are ignored. A flat band (noise 0, as in clipped 8-bit JPEG backgrounds) falls
    back to the plain standard deviation, then to 1, so that no stretch divides by zero.
    """
    flat = np.asarray(data, dtype=np.float32).reshape(len(data), -1)
    flat = np.where(np.isfinite(flat), flat, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, median, noise = sigma_clipped_stats(flat, sigma=3.0, maxiters=5, stdfunc="mad_std",
                                               axis=1)
        median = np.nan_to_num(np.asarray(median, dtype=np.float64), nan=0.0)
        noise = np.asarray(noise, dtype=np.float64)
        weak = ~(noise > 0)
        if weak.any():
            noise[weak] = np.nanstd(flat[weak], axis=1)
            noise[~(noise > 0)] = 1.0
    return median, noise


@dataclass(frozen=True)
class Stretch:
    """A named stretch and its parameters.

    ``scope="band"`` computes the statistics of each band on its own; ``scope="image"``
    shares them across bands, which keeps colours (for asinh, the colour-preserving form of
    Lupton et al. 2004: every band is scaled by ``asinh(I / (softening * noise)) / I`` of the
    mean background-subtracted intensity ``I``).
    """

    name: str = "asinh"
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

    def __post_init__(self):
        if self.name not in STRETCH_NAMES:
            raise ValueError(f"unknown stretch {self.name!r}; choose one of {', '.join(STRETCH_NAMES)}")
        if self.scope not in SCOPES:
            raise ValueError(f"unknown stretch scope {self.scope!r}; choose one of {', '.join(SCOPES)}")
        if self.softening <= 0:
            raise ValueError(f"asinh softening must be > 0, got {self.softening}")
        if not 0 <= self.lower < self.upper <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= lower < upper <= 100, got "
                             f"{self.lower}, {self.upper}")
        if self.log_a <= 0:
            raise ValueError(f"log stretch parameter a must be > 0, got {self.log_a}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Stretch":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def __call__(self, data: np.ndarray, statistics: dict | None = None) -> np.ndarray:
        """Stretch a float ``(bands, y, x)`` array; returns float32, NaN where the input was.

        ``statistics`` (from :meth:`statistics`) fixes the image statistics instead of measuring
        them on ``data``: how ``segment`` stretches every tile of a large image the same way.
        """
        data = np.asarray(data, dtype=np.float32)
        if data.ndim != 3:
            raise ValueError(f"expected a (bands, y, x) array, got shape {data.shape}")
        if self.name == "none":
            return data.copy()
        statistics = statistics if statistics is not None else self.statistics(data)
        if self.name == "asinh":
            return self._asinh(data, statistics)
        groups = [data] if self.scope == "image" else [data[i:i + 1] for i in range(len(data))]
        return np.concatenate([self._interval_stretch(g, limits) for g, limits
                               in zip(groups, statistics["limits"])]).astype(np.float32)

    def statistics(self, data: np.ndarray) -> dict:
        """The image statistics the stretch depends on (background, noise, clip limits)."""
        data = np.asarray(data, dtype=np.float32)
        if self.name == "none":
            return {}
        if self.name == "asinh":
            median, noise = background_and_noise(data)
            if self.scope == "band":
                return {"median": median.tolist(), "scale": (self.softening * noise).tolist()}
            centred = data - median.astype(np.float32)[:, None, None]
            _, intensity_noise = background_and_noise(centred.mean(axis=0)[None])
            return {"median": median.tolist(),
                    "soft": float(self.softening * intensity_noise[0])}
        groups = [data] if self.scope == "image" else [data[i:i + 1] for i in range(len(data))]
        return {"limits": [self._limits(g) for g in groups]}

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
        centred = data - np.asarray(statistics["median"], dtype=np.float32)[:, None, None]
        if self.scope == "band":
            scale = np.asarray(statistics["scale"], dtype=np.float32)
            return np.arcsinh(centred / scale[:, None, None]).astype(np.float32)
        intensity = centred.mean(axis=0)
        soft = np.float32(statistics["soft"])
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(np.abs(intensity) > 1e-12 * soft,
                              np.arcsinh(intensity / soft) / intensity, 1.0 / soft)
        return (centred * factor[None]).astype(np.float32)
