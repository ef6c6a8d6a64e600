"""The preprocessing recipe on a torch device, for a batch of raw images at once.

On a GPU the reading workers only decode FITS files; the statistics, stretch, fill and
geometry of :class:`galcnn.data.recipe.Preprocess` run here, on the device, for a whole batch
of raw images of one shape. The clipped statistics are the same algorithm as on the CPU
(:mod:`galcnn.data.clipping`, with a torch backend); medians follow numpy (the mean of the
two middle values). Results agree with the CPU recipe to float32 rounding (the sums run in
another order), far inside the noise.

Supported: the ``peak``, ``asinh``, ``linear`` and ``none`` stretches with ``crop`` or
``resize`` geometry, which cover every default (``peak`` for a classifier's cutouts, binned
by ``resize`` when over 96 px; ``asinh`` for a U-Net's fields); the ``percentile``,
``zscale`` and ``log`` stretches are prepared on the CPU as before (:meth:`supports`).
``resize`` is scikit-image's (Gaussian anti-aliasing when shrinking, then bilinear
interpolation with the edge repeated).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from galcnn.data.clipping import Backend, clipped_median_and_std
from galcnn.data.recipe import Preprocess

__all__ = ["TORCH", "DeviceRecipe"]


def _kept_std(rows: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Population standard deviation of the kept values of each row (float64 sums)."""
    values = torch.where(kept, rows.double(), 0.0)
    count = kept.sum(dim=-1)
    mean = values.sum(dim=-1) / count
    deviation = torch.where(kept, values - mean[:, None], 0.0)
    std = torch.sqrt((deviation * deviation).sum(dim=-1) / count).float()
    return torch.where(count > 0, std, float("nan"))


def _tensor(value, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


TORCH = Backend(
    sort=lambda x: torch.sort(x, dim=-1).values, gather=lambda x, rows, i: x[rows, i],
    arange=lambda n, like: torch.arange(n, device=like.device),
    float64=lambda x: x.double(), float32=lambda x: x.float(), isnan=torch.isnan,
    where=lambda c, a, b: torch.where(c, a, b),
    minimum=lambda a, b: torch.minimum(a, _tensor(b, a)),
    maximum=lambda a, b: torch.maximum(a, _tensor(b, a)), concat=torch.cat,
    any=lambda x: bool(x.any()),
    nextafter=lambda x, to: torch.nextafter(x, torch.full_like(x, to)), kept_std=_kept_std)


def _median(rows: torch.Tensor) -> torch.Tensor:
    """numpy's median of the finite values of each row (mean of the two middle values);
    0 for a row with none."""
    s = torch.sort(rows, dim=-1).values
    n = torch.isfinite(s).sum(dim=-1)
    index = torch.arange(len(rows), device=rows.device)
    low = s[index, torch.clamp((n - 1) // 2, min=0)]
    high = s[index, torch.clamp(n // 2, max=s.shape[-1] - 1)]
    return torch.where(n > 0, (low + high) / 2, 0.0)


def _nanstd(rows: torch.Tensor) -> torch.Tensor:
    return _kept_std(torch.nan_to_num(rows), ~torch.isnan(rows))


def _nanmax(rows: torch.Tensor) -> torch.Tensor:
    """The largest finite-or-inf value of each row; -inf for a row of NaN."""
    return torch.where(torch.isnan(rows), -math.inf, rows).amax(dim=-1)


def _gaussian_kernel(sigma: float, device: torch.device) -> torch.Tensor:
    """scipy's ``gaussian_filter1d`` weights (truncated at 4 sigma)."""
    radius = int(4.0 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 / sigma ** 2 * x * x)
    return (weights / weights.sum()).float().to(device)


def _blur(images: torch.Tensor, sigma: float, axis: int) -> torch.Tensor:
    """A Gaussian along ``axis`` (-1: x, -2: y) of ``(n, bands, y, x)``, the edge repeated
    (scipy's ``mode="nearest"``)."""
    if sigma <= 0:
        return images
    kernel = _gaussian_kernel(sigma, images.device)
    radius = len(kernel) // 2
    moved = images.movedim(axis, -1)
    shape = moved.shape
    rows = F.pad(moved.reshape(-1, 1, shape[-1]), (radius, radius), mode="replicate")
    return F.conv1d(rows, kernel.view(1, 1, -1)).reshape(shape).movedim(-1, axis)


class DeviceRecipe:
    """:class:`Preprocess` applied on ``device`` to batches ``(n, bands, y, x)`` of raw
    images (float32, NaN for bad pixels)."""

    def __init__(self, recipe: Preprocess, device: torch.device):
        if not self.supports(recipe):
            raise ValueError(f"the {recipe.stretch.name} stretch with fit {recipe.fit} is "
                             "prepared on the CPU")
        self.recipe, self.device = recipe, device

    @staticmethod
    def supports(recipe: Preprocess) -> bool:
        return recipe.stretch.name in ("peak", "asinh", "linear", "none")

    def __call__(self, raw: torch.Tensor) -> torch.Tensor:
        """Network inputs ``(n, bands, ny, nx)`` in the recipe's dtype, as float32."""
        data = raw.to(self.device, non_blocking=True).float()
        stretched = self._stretch(data)
        filled = self._fill(stretched)
        return self._fit(filled).to(getattr(torch, self.recipe.dtype)).float()

    def _stretch(self, data: torch.Tensor) -> torch.Tensor:
        stretch = self.recipe.stretch
        n, bands = data.shape[:2]
        if stretch.name == "none":
            return data.clone()
        if stretch.name == "linear":  # min-max to [0, 1] over the image or each band
            groups = data.reshape(n if stretch.scope == "image" else n * bands, -1)
            finite = torch.isfinite(groups)
            low = torch.where(finite, groups, float("inf")).amin(dim=-1)
            high = torch.where(finite, groups, -float("inf")).amax(dim=-1)
            shape = (n, 1, 1, 1) if stretch.scope == "image" else (n, bands, 1, 1)
            low, high = low.reshape(shape), high.reshape(shape)
            scaled = torch.clamp((data - low) / (high - low), 0.0, 1.0)
            scaled = torch.where(high > low, scaled, torch.zeros_like(data))
            return torch.where(torch.isfinite(data), scaled, float("nan"))
        median, noise = self._background_and_noise(data.reshape(n * bands, -1))
        centred = data - median.float().reshape(n, bands, 1, 1)
        peak = stretch.name == "peak"
        norm = math.asinh(1.0 / stretch.peak_softening) if peak else 1.0
        if stretch.scope == "band":
            if peak:
                scale, floor = self._peak_scale(data.reshape(n * bands, -1), median, noise)
                if floor is not None:
                    centred = torch.where(centred < floor.reshape(n, bands, 1, 1), 0.0,
                                          centred)
            else:
                scale = stretch.softening * noise
            return torch.asinh(centred / scale.float().reshape(n, bands, 1, 1)) / \
                torch.tensor(norm, dtype=torch.float32)
        intensity = centred.mean(dim=1)
        _, intensity_noise = self._background_and_noise(intensity.reshape(n, -1))
        if peak:
            soft, floor = self._peak_scale(intensity.reshape(n, -1), 0.0, intensity_noise)
            if floor is not None:
                faint = intensity < floor.reshape(n, 1, 1)
                centred = torch.where(faint[:, None], 0.0, centred)
                intensity = torch.where(faint, 0.0, intensity)
        else:
            soft = stretch.softening * intensity_noise
        soft = soft.float().reshape(n, 1, 1)
        factor = torch.where(intensity.abs() > 1e-12 * soft, torch.asinh(intensity / soft)
                             / intensity, 1.0 / soft)
        return centred * (factor / torch.tensor(norm, dtype=torch.float32))[:, None]

    def _peak_scale(self, rows: torch.Tensor, median, noise: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """As :meth:`Stretch._peak_numbers`: the softening scale (a fraction of the row's
        peak above the background, or the noise when nothing rises above it) and the floor
        (float32, None when off)."""
        stretch = self.recipe.stretch
        peak = _nanmax(rows).double() - median
        peak = torch.where(torch.isfinite(peak) & (peak > noise), peak, noise)
        floor = (stretch.floor * noise).float() if stretch.floor > 0 else None
        return stretch.peak_softening * peak, floor

    @staticmethod
    def _background_and_noise(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As :func:`galcnn.data.stretch.background_and_noise`, in float64."""
        median, noise = clipped_median_and_std(rows, xp=TORCH)
        median = torch.nan_to_num(median.double(), nan=0.0)
        noise = noise.double()
        noise = torch.where(noise > 0, noise, _nanstd(rows).double())
        return median, torch.where(noise > 0, noise, 1.0)

    def _fill(self, stretched: torch.Tensor) -> torch.Tensor:
        bad = ~torch.isfinite(stretched)
        if not bool(bad.any()):
            return stretched
        n, bands = stretched.shape[:2]
        if self.recipe.fill == "zero":
            values = torch.zeros(n, bands, device=stretched.device)
        else:
            values = _median(stretched.reshape(n * bands, -1)).reshape(n, bands)
        return torch.where(bad, values[:, :, None, None], stretched)

    def _fit(self, filled: torch.Tensor) -> torch.Tensor:
        """Centre crop, or pad with each band's median, or resize, as
        :func:`galcnn.data.geometry.fit_to_size` does."""
        ny, nx = self.recipe.size
        n, bands, height, width = filled.shape
        if (height, width) == (ny, nx):
            return filled
        if self.recipe.fit == "resize":
            return self._resize(filled)
        out = filled
        if height > ny or width > nx:
            y0, x0 = max(0, (height - ny) // 2), max(0, (width - nx) // 2)
            out = out[:, :, y0:y0 + min(ny, height), x0:x0 + min(nx, width)]
        if height < ny or width < nx:
            pad = _median(filled.reshape(n * bands, -1)).reshape(n, bands, 1, 1)
            canvas = pad.expand(n, bands, ny, nx).clone()
            h, w = out.shape[-2:]
            top, left = (ny - h) // 2, (nx - w) // 2
            canvas[:, :, top:top + h, left:left + w] = out
            out = canvas
        return out.contiguous()

    def _resize(self, images: torch.Tensor) -> torch.Tensor:
        """scikit-image's ``resize(order=1, mode="edge", anti_aliasing=<shrinking>)``: a
        Gaussian of sigma ``(factor - 1) / 2`` along each shrunk axis, then bilinear
        interpolation between pixel centres."""
        ny, nx = self.recipe.size
        height, width = images.shape[-2:]
        if height > ny or width > nx:
            images = _blur(images, max(0.0, (height / ny - 1) / 2), -2)
            images = _blur(images, max(0.0, (width / nx - 1) / 2), -1)
        return F.interpolate(images, size=(ny, nx), mode="bilinear", align_corners=False)
