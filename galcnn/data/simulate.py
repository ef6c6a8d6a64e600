"""A small galaxy simulator with exact pixel masks, for examples, tests and benchmarks.

Galaxies are Sersic bulges and exponential discs; spirals carry two logarithmic arms with a
winding sense; edge-on discs are thin; everything is convolved with a Gaussian PSF and gets
Gaussian noise of unit standard deviation. Masks are exact because the noiseless model is
known: a pixel belongs to an object where that object's PSF-convolved model is brighter than
``mask_level`` times the noise.

Orientation convention: arrays are in FITS order, row 0 at the bottom, displayed with
``origin="lower"`` (x to the right, y up). A *clockwise* spiral's arms turn clockwise as they
go outwards; an *anticlockwise* one's turn anticlockwise. Any rotation keeps the sense; a
mirror image swaps it (:func:`spiral_winding` measures it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from skimage.filters import gaussian

__all__ = ["CLASSES", "SimulatedCutout", "render_galaxy", "simulate_cutout", "simulate_field",
           "write_field", "spiral_winding", "write_cutout"]

CLASSES = ("elliptical", "spiral_cw", "spiral_acw", "edge_on")
MASK_BACKGROUND, MASK_CENTRAL, MASK_OTHER = 0, 1, 2
_OVERSAMPLE = 2


def _sersic_b(n: float) -> float:
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n)


def _grid(shape: tuple[int, int], centre: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Oversampled pixel-centre offsets (dx, dy) from ``centre=(x, y)``."""
    ny, nx = shape
    step = 1.0 / _OVERSAMPLE
    offsets = (np.arange(_OVERSAMPLE) + 0.5) * step - 0.5
    ys = (np.arange(ny)[:, None] + offsets[None]).ravel()
    xs = (np.arange(nx)[:, None] + offsets[None]).ravel()
    return xs[None, :] - centre[0], ys[:, None] - centre[1]


def _bin(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    ny, nx = shape
    return image.reshape(ny, _OVERSAMPLE, nx, _OVERSAMPLE).mean(axis=(1, 3))


def _elliptical_radius(dx, dy, axis_ratio: float, angle: float):
    cos, sin = math.cos(angle), math.sin(angle)
    major = dx * cos + dy * sin
    minor = -dx * sin + dy * cos
    return np.hypot(major, minor / axis_ratio), np.arctan2(minor / axis_ratio, major)


def render_galaxy(kind: str, shape: tuple[int, int], centre: tuple[float, float],
                  rng: np.random.Generator, *, scale: float = 1.0) -> np.ndarray:
    """Noiseless, unconvolved image of one galaxy with unit peak-ish brightness.

    ``scale`` multiplies all radii (pixels), so the same kinds make cutouts and field objects.
    ``kind`` is one of :data:`CLASSES` or ``"star"``.
    """
    dx, dy = _grid(shape, centre)
    angle = rng.uniform(0, math.pi)
    if kind == "star":
        model = np.exp(-0.5 * (dx ** 2 + dy ** 2) / (0.35 * scale) ** 2)
    elif kind == "elliptical":
        n = rng.uniform(2.5, 4.0)
        r_e = rng.uniform(3.0, 6.0) * scale
        radius, _ = _elliptical_radius(dx, dy, rng.uniform(0.6, 1.0), angle)
        model = np.exp(-_sersic_b(n) * ((radius / r_e) ** (1.0 / n) - 1.0))
    elif kind == "edge_on":
        h = rng.uniform(5.0, 8.0) * scale
        radius, _ = _elliptical_radius(dx, dy, rng.uniform(0.12, 0.22), angle)
        bulge, _ = _elliptical_radius(dx, dy, 0.7, angle)
        model = np.exp(-radius / h) + 0.05 * np.exp(-_sersic_b(2.0) * ((bulge / (1.5 * scale)) ** 0.5 - 1.0))
    elif kind in ("spiral_cw", "spiral_acw"):
        sense = 1.0 if kind == "spiral_acw" else -1.0
        h = rng.uniform(5.0, 8.0) * scale
        pitch = math.radians(rng.uniform(15.0, 30.0))
        radius, theta = _elliptical_radius(dx, dy, rng.uniform(0.75, 1.0), angle)
        arm_phase = 2.0 * (theta - sense * np.log(np.maximum(radius, 0.5) / h) / math.tan(pitch)
                           - rng.uniform(0, math.pi))
        arms = ((1.0 + np.cos(arm_phase)) / 2.0) ** 3
        disc = np.exp(-radius / h) * (0.25 + 1.5 * arms)
        bulge = np.exp(-_sersic_b(2.0) * ((radius / (0.25 * h)) ** 0.5 - 1.0)) * 0.08
        model = disc + bulge
    else:
        raise ValueError(f"unknown galaxy kind {kind!r}; choose one of {', '.join(CLASSES)} or star")
    model = _bin(model, shape)
    return model / model.max()


def _convolve(image: np.ndarray, psf_sigma: float) -> np.ndarray:
    return gaussian(image, sigma=psf_sigma, mode="constant", preserve_range=True)


@dataclass
class SimulatedCutout:
    """A cutout (1, y, x) with its exact mask (0 background, 1 the galaxy, 2 other objects)."""

    image: np.ndarray
    mask: np.ndarray
    label: str
    snr: float


def simulate_cutout(kind: str, *, size: int = 64, snr: float | None = None,
                    rng: np.random.Generator | None = None, psf_sigma: float = 1.2,
                    n_neighbours: int | None = None, mask_level: float = 1.0) -> SimulatedCutout:
    """One centred galaxy of ``kind`` with noise 1 and peak signal-to-noise ``snr``."""
    rng = rng if rng is not None else np.random.default_rng()
    snr = float(snr if snr is not None else rng.uniform(15.0, 80.0))
    shape = (size, size)
    centre = (size / 2 - 0.5 + rng.uniform(-1, 1), size / 2 - 0.5 + rng.uniform(-1, 1))
    galaxy = _convolve(render_galaxy(kind, shape, centre, rng, scale=size / 64), psf_sigma)
    galaxy *= snr / galaxy.max()
    mask = np.where(galaxy > mask_level, MASK_CENTRAL, MASK_BACKGROUND).astype(np.int16)
    scene = galaxy.copy()
    n_neighbours = rng.integers(0, 3) if n_neighbours is None else n_neighbours
    for _ in range(n_neighbours):
        where = rng.uniform(0.1 * size, 0.9 * size, 2)
        if np.hypot(*(where - np.array(centre))) < 0.3 * size:
            continue
        other = _convolve(render_galaxy("star", shape, tuple(where), rng, scale=1.0), psf_sigma)
        other *= rng.uniform(5.0, 40.0) / other.max()
        mask[(other > mask_level) & (mask == MASK_BACKGROUND)] = MASK_OTHER
        scene += other
    noisy = scene + rng.normal(0.0, 1.0, shape)
    return SimulatedCutout(noisy.astype(np.float32)[None], mask, kind, snr)


def write_cutout(path: str, cutout: SimulatedCutout, *, compress: bool = True) -> None:
    """Image in the first image HDU, the exact mask in HDU ``MASK``; ``.fits.fz`` style RICE."""
    header = fits.Header()
    header["CLASS"] = (cutout.label, "simulated morphology")
    header["SNR"] = (round(cutout.snr, 2), "peak signal-to-noise")
    header["NOISE"] = (1.0, "noise standard deviation")
    if compress:
        image_hdu = fits.CompImageHDU(cutout.image[0], header=header, compression_type="RICE_1",
                                      quantize_level=8.0)
        mask_hdu = fits.CompImageHDU(cutout.mask, name="MASK", compression_type="RICE_1")
        hdus = fits.HDUList([fits.PrimaryHDU(), image_hdu, mask_hdu])
    else:
        hdus = fits.HDUList([fits.PrimaryHDU(cutout.image[0], header=header),
                             fits.ImageHDU(cutout.mask, name="MASK")])
    hdus.writeto(path, overwrite=True)


def simulate_field(shape: tuple[int, int] = (512, 512), *, n_galaxies: int = 30,
                   n_stars: int = 20, rng: np.random.Generator | None = None,
                   psf_sigma: float = 1.2, snr_range: tuple[float, float] = (8.0, 60.0),
                   mask_level: float = 1.0, pixel_scale_arcsec: float = 0.4,
                   centre_radec: tuple[float, float] = (150.1, 2.2)
                   ) -> tuple[np.ndarray, np.ndarray, list[dict], fits.Header]:
    """A survey-like field: image, exact class map, object list, and a header with a TAN WCS.

    The class map holds 0 for background and ``1 + CLASSES.index(kind)`` for galaxy pixels;
    stars are in the image but not in the class map (value 0), as in a galaxy-only labelling.
    """
    rng = rng if rng is not None else np.random.default_rng()
    ny, nx = shape
    image = np.zeros(shape)
    class_map = np.zeros(shape, dtype=np.int16)
    brightest = np.zeros(shape)
    objects = []
    for index in range(n_galaxies + n_stars):
        kind = CLASSES[rng.integers(len(CLASSES))] if index < n_galaxies else "star"
        x, y = rng.uniform(16, nx - 16), rng.uniform(16, ny - 16)
        scale = rng.uniform(0.6, 1.3) if kind != "star" else 1.0
        model = _convolve(render_galaxy(kind, shape, (x, y), rng, scale=scale), psf_sigma)
        snr = rng.uniform(*snr_range) if kind != "star" else rng.uniform(10.0, 100.0)
        model *= snr / model.max()
        image += model
        if kind != "star":
            owns = (model > mask_level) & (model > brightest)
            class_map[owns] = 1 + CLASSES.index(kind)
            brightest = np.maximum(brightest, model)
        objects.append({"kind": kind, "x": x, "y": y, "snr": snr})
    image += rng.normal(0.0, 1.0, shape)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = list(centre_radec)
    wcs.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
    wcs.wcs.cdelt = [-pixel_scale_arcsec / 3600.0, pixel_scale_arcsec / 3600.0]
    wcs.wcs.radesys = "ICRS"
    header = wcs.to_header()
    header["BUNIT"] = ("counts", "noise standard deviation is 1")
    header["OBJECT"] = "galcnn simulated field"
    return image.astype(np.float32), class_map, objects, header


def write_field(path: str, rng: np.random.Generator, shape: tuple[int, int] = (512, 512), *,
                n_galaxies: int = 30, n_stars: int = 20) -> None:
    """A simulated field with its truth, as in ``sample_data/field.fits.fz``: HDU ``SCI`` the
    image, ``CLASSMAP`` the exact class of every galaxy pixel (k for ``CLASSES[k-1]``, named
    in the ``CLASSES`` keyword), table ``OBJECTS`` (kind, x, y, snr; 0-based pixels)."""
    image, class_map, objects, header = simulate_field(shape, n_galaxies=n_galaxies,
                                                       n_stars=n_stars, rng=rng)
    header["CLASSES"] = (",".join(CLASSES), "CLASSMAP k>0: class k-1")
    table = fits.BinTableHDU.from_columns([
        fits.Column(name="kind", format="12A", array=[o["kind"] for o in objects]),
        fits.Column(name="x", format="E", array=[o["x"] for o in objects]),
        fits.Column(name="y", format="E", array=[o["y"] for o in objects]),
        fits.Column(name="snr", format="E", array=[o["snr"] for o in objects]),
    ], name="OBJECTS")
    fits.HDUList([
        fits.PrimaryHDU(),
        fits.CompImageHDU(image, header=header, name="SCI", compression_type="RICE_1",
                          quantize_level=8.0),
        fits.CompImageHDU(class_map, header=header, name="CLASSMAP", compression_type="RICE_1"),
        table,
    ]).writeto(path, overwrite=True)


def spiral_winding(image: np.ndarray, *, centre: tuple[float, float] | None = None,
                   r_min: float = 3.0, r_max: float | None = None) -> int:
    """+1 for anticlockwise arms, -1 for clockwise (convention in the module docstring).

    The sign of the log-spiral wavenumber ``p`` that maximises the two-armed Fourier amplitude
    ``|sum I exp(-i (2 theta + p ln r))|``; rotation changes only its phase, a mirror flips p.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3:
        image = image.sum(axis=0)
    ny, nx = image.shape
    cx, cy = centre if centre is not None else ((nx - 1) / 2.0, (ny - 1) / 2.0)
    yy, xx = np.mgrid[0:ny, 0:nx]
    dx, dy = xx - cx, yy - cy
    radius = np.hypot(dx, dy)
    r_max = r_max if r_max is not None else min(nx, ny) / 2.0 - 1
    use = (radius >= r_min) & (radius <= r_max)
    weight = np.clip(image[use] - np.median(image), 0, None)
    theta, log_r = np.arctan2(dy[use], dx[use]), np.log(radius[use])
    wavenumbers = np.concatenate([np.linspace(-20, -0.5, 40), np.linspace(0.5, 20, 40)])
    amplitude = [abs(np.sum(weight * np.exp(-1j * (2 * theta + p * log_r)))) for p in wavenumbers]
    return -int(np.sign(wavenumbers[int(np.argmax(amplitude))]))
