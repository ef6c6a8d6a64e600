"""The preprocessing recipe: the one path from a FITS image to a network input.

A :class:`Preprocess` says how an image is read (HDU rule, band pattern, band order), which
images are refused (band count, bad pixels, size), and how it becomes an array (stretch, fill
of bad pixels, geometry, storage dtype). ``prepare`` writes it into the dataset's metadata,
``train`` copies it into the model card, and ``predict``, ``evaluate`` and ``segment`` rebuild
every input from the card through the same methods, so a model always sees what it was
trained on. :meth:`Preprocess.differences` is the compatibility check between a model and a
prepared set.

Two ways to apply it:

- :meth:`Preprocess.apply` for a whole cutout: statistics measured on the image, stretch,
  fill, then crop/pad/resize to ``size``;
- :meth:`Preprocess.window_context` and :meth:`Preprocess.apply_window` for tiles of a large
  image: statistics and fill values measured once per image, applied to every window, no
  geometry (a U-Net takes any size).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from galcnn.choices import DTYPES, FILL_METHODS, FIT_MODES, unknown_choice
from galcnn.data.fitsio import FitsImage, read_image
from galcnn.data.geometry import fit_to_size
from galcnn.data.stretch import Stretch

__all__ = ["Preprocess", "WindowContext", "NO_USABLE_PIXEL", "degenerate_range"]

#: The largest side a classifier's input gets without ``--size`` (larger cutouts are binned).
MAX_AUTO_SIZE = 96

NO_USABLE_PIXEL = "every pixel is NaN, inf or BLANK"


def degenerate_range(low: float, high: float) -> str | None:
    """Why an image whose usable pixels span ``[low, high]`` (``low > high`` or NaN: none is
    usable) says nothing (one line), or None: a constant image (all zero, a blank detector
    read) has no morphology, yet a network would give it a confident class."""
    if not low <= high:
        return NO_USABLE_PIXEL
    if low == high:
        return f"constant image (every usable pixel is {float(low):g})"
    return None


@dataclass(frozen=True)
class WindowContext:
    """Image-wide values that every window of one image is stretched and filled with."""

    statistics: dict
    fill_values: np.ndarray


@dataclass(frozen=True)
class Preprocess:
    """How every image becomes a network input; stored in datasets and model cards."""

    bands: tuple[str, ...] = ()
    """Band names in input order; empty until the inputs are known."""
    size: tuple[int, int] | None = None
    """``(ny, nx)`` of the network input; None until the inputs are known (native size)."""
    fit: str = "crop"
    """``crop``: centre crop/pad, pixel scale kept; ``resize``: resample, field of view kept."""
    stretch: Stretch = field(default_factory=Stretch)
    fill: str = "median"
    """Value for NaN/inf/BLANK pixels after the stretch: each band's ``median``, or ``zero``."""
    max_bad_fraction: float = 0.5
    """An image with more bad pixels than this is refused."""
    hdu: int | str | None = None
    """Image HDU by number or EXTNAME; None: the first HDU with 2-D or 3-D data."""
    band_pattern: str | None = None
    """One file per band: file-name pattern with ``{id}`` and ``{band}``."""
    dtype: str = "float32"
    """Pixel type of the stored sample, and so of the values the network sees."""

    def __post_init__(self):
        if self.fit not in FIT_MODES:
            raise ValueError(unknown_choice("fit", self.fit, FIT_MODES))
        if self.fill not in FILL_METHODS:
            raise ValueError(unknown_choice("fill", self.fill, FILL_METHODS))
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.size is not None:
            size = tuple(int(v) for v in self.size)
            if len(size) != 2 or min(size) < 4:
                raise ValueError(f"size must be two integers >= 4, got {self.size}")
            object.__setattr__(self, "size", size)
        if not 0 < self.max_bad_fraction <= 1:
            raise ValueError("max bad-pixel fraction must be in (0, 1]")
        object.__setattr__(self, "bands", tuple(str(b) for b in self.bands))

    # ------------------------------------------------------------------ identity

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    def reading(self, hdu: int | str | None = None, band_pattern: str | None = None,
                bands: list[str] | tuple[str, ...] | None = None) -> "Preprocess":
        """A copy that reads other files the same way: the HDU rule, band pattern and band
        order given (not None) replace the model's; the stretch and size stay."""
        given = {"hdu": hdu, "band_pattern": band_pattern,
                 "bands": tuple(bands) if bands is not None else None}
        return replace(self, **{k: v for k, v in given.items() if v is not None})

    def with_inputs(self, bands: list[str] | tuple[str, ...], size: tuple[int, int]
                    ) -> "Preprocess":
        """A copy completed with what the inputs showed: band names and (native) size."""
        return replace(self, bands=tuple(bands), size=self.size or tuple(size))

    def for_task(self, native: tuple[int, int], dense: bool) -> "Preprocess":
        """The recipe prepare applies to cutouts of ``native`` size for a classifier, or for
        a U-Net's fields (``dense``): the ``auto`` stretch made concrete
        (:meth:`Stretch.for_task`), and, for a classifier without a chosen size, cutouts
        larger than ``MAX_AUTO_SIZE`` on a side binned by the smallest integer factor that
        brings them to it (resampled, the field kept).

        On MiraBest (150 px) binning 2x to 75 px took the validation accuracy from 0.708 to
        0.778 and the brighter half, unseen in training, from 0.761 to 0.825 (peak stretch,
        bench/RESULTS.md), and trains about 4 times faster; a 64 px centre crop lost the
        lobes of the larger sources (0.722)."""
        recipe = replace(self, stretch=self.stretch.for_task(dense))
        if dense or self.size is not None or max(native) <= MAX_AUTO_SIZE:
            return recipe
        factor = -(-max(native) // MAX_AUTO_SIZE)
        return replace(recipe, size=(native[0] // factor, native[1] // factor), fit="resize")

    def to_dict(self) -> dict:
        """Plain values (JSON, and ``torch.load(weights_only=True)``)."""
        return {"bands": list(self.bands), "size": list(self.size) if self.size else None,
                "fit": self.fit, "stretch": self.stretch.to_dict(), "fill": self.fill,
                "max_bad_fraction": self.max_bad_fraction,
                "hdu": "auto" if self.hdu is None else self.hdu,
                "band_pattern": self.band_pattern, "dtype": self.dtype}

    @classmethod
    def from_dict(cls, values: dict) -> "Preprocess":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        values["stretch"] = Stretch.from_dict(values.get("stretch") or {})
        values["hdu"] = None if values.get("hdu") in (None, "auto") else values["hdu"]
        values["bands"] = tuple(values.get("bands") or ())
        if values.get("size"):
            values["size"] = tuple(values["size"])
        return cls(**values)

    @classmethod
    def from_legacy(cls, options: dict, *, bands, size, band_pattern=None) -> "Preprocess":
        """The recipe of a dataset or checkpoint written before recipes existed (galcnn 0.1:
        ``options``/``prepare`` dict plus separate ``bands``, ``size`` and ``band_pattern``)."""
        values = {k: options[k] for k in ("fit", "stretch", "fill", "max_bad_fraction", "hdu",
                                          "dtype") if k in options}
        return cls.from_dict({**values, "bands": bands, "size": size,
                              "band_pattern": band_pattern})

    def differences(self, other: "Preprocess") -> list[str]:
        """What makes inputs made with ``other`` different from inputs made with this recipe
        (empty when a model of one may be scored on data of the other)."""
        found = []
        if self.n_bands != other.n_bands:
            found.append(f"{other.n_bands} band(s) instead of {self.n_bands}")
        if self.size != other.size:
            found.append(f"size {_size_text(other.size)} instead of {_size_text(self.size)}")
        if self.fit != other.fit and self.size is not None:
            found.append(f"--fit {other.fit} instead of {self.fit}")
        if self.stretch != other.stretch:
            found.append(f"stretch {_stretch_text(other.stretch)} instead of "
                         f"{_stretch_text(self.stretch)}")
        if self.fill != other.fill:
            found.append(f"--fill {other.fill} instead of {self.fill}")
        return found

    # ------------------------------------------------------------------ reading and checks

    def read(self, paths: list[str] | tuple[str, ...] | str) -> FitsImage:
        """Read one object (one file, or one file per band) by this recipe's HDU rule.

        Raises :class:`galcnn.data.fitsio.FitsReadError`."""
        return read_image(list(paths) if not isinstance(paths, str) else paths, hdu=self.hdu)

    def problem(self, image: FitsImage, *, same_size: bool = False,
                expected: str = "expected") -> str | None:
        """Why ``image`` cannot be used (one line), or None.

        ``same_size``: the size was taken from the inputs, so every image must have it
        (``prepare`` without ``--size``); otherwise any image large enough is cropped,
        padded or resized. ``expected`` says whose the recipe is (``the model needs``).
        """
        if self.n_bands and image.n_bands != self.n_bands:
            return f"has {image.n_bands} band(s), {expected} {self.n_bands}"
        bad_fraction = image.n_bad / image.data.size
        if bad_fraction >= 1.0:
            return NO_USABLE_PIXEL
        if bad_fraction > self.max_bad_fraction:
            return (f"{100 * bad_fraction:.0f}% of pixels are NaN, inf or BLANK (limit "
                    f"{100 * self.max_bad_fraction:.0f}%, --max-bad-fraction)")
        if self.size is not None:
            return _geometry_problem(image.shape, self.size, self.fit, same_size)
        return None

    def warning(self, image: FitsImage) -> str | None:
        """Why a usable ``image`` still cannot say anything (:func:`degenerate_range`)."""
        with np.errstate(invalid="ignore"):
            return degenerate_range(np.nanmin(image.data), np.nanmax(image.data))

    # ------------------------------------------------------------------ applying

    def normalise(self, data: np.ndarray, context: WindowContext | None = None) -> np.ndarray:
        """Stretch and fill bad pixels: float32 ``(bands, y, x)``, no NaN left.

        Without ``context`` the statistics and fill values are measured on ``data`` itself.
        """
        if context is None:
            return self.normalise_all([data])[0]
        return _filled(self.stretch(data, context.statistics), lambda _: context.fill_values)

    def normalise_all(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """:meth:`normalise` of many images, each with its own statistics, measured together
        (much faster than one at a time; the same numbers)."""
        stretched = [self.stretch(image, statistics) for image, statistics
                     in zip(images, self.stretch.statistics_of(images))]
        return [_filled(s, self._fill_values) for s in stretched]

    def fit_to_size(self, normalised: np.ndarray) -> np.ndarray:
        """Crop/pad (padding with each band's median) or resize to ``size``."""
        height, width = normalised.shape[1:]
        pads = self.fit == "crop" and (height < self.size[0] or width < self.size[1])
        pad = np.median(normalised.reshape(len(normalised), -1), axis=1) if pads else None
        return fit_to_size(normalised, self.size, fit=self.fit, pad_values=pad)

    def apply(self, data: np.ndarray) -> np.ndarray:
        """The network input of a whole cutout ``(bands, y, x)``, in ``dtype``."""
        return self.apply_all([data])[0]

    def apply_all(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """:meth:`apply` of many cutouts, their statistics measured together."""
        if self.size is None:
            raise ValueError("the recipe has no size yet (Preprocess.with_inputs)")
        return [self.fit_to_size(n).astype(self.dtype, copy=False)
                for n in self.normalise_all(images)]

    def window_context(self, sample: np.ndarray) -> WindowContext:
        """Statistics and fill values of an image, from ``sample`` (the image, or a mosaic of
        windows of a large one), for :meth:`apply_window`."""
        statistics = self.stretch.statistics(sample)
        return WindowContext(statistics, self._fill_values(self.stretch(sample, statistics)))

    def apply_window(self, window: np.ndarray, context: WindowContext) -> np.ndarray:
        """One window of a large image, stretched and filled with image-wide values, in
        ``dtype``; no geometry (the window keeps its size)."""
        return self.normalise(window, context).astype(self.dtype, copy=False)

    def _fill_values(self, stretched: np.ndarray) -> np.ndarray:
        """Per band: the median of finite stretched pixels (0 when none), or zero."""
        if self.fill == "zero":
            return np.zeros(len(stretched), dtype=np.float32)
        values = np.zeros(len(stretched), dtype=np.float32)
        for index, band in enumerate(stretched):
            finite = band[np.isfinite(band)]
            if finite.size:
                values[index] = np.median(finite)
        return values


def _filled(stretched: np.ndarray, fill_values) -> np.ndarray:
    """``stretched`` with its NaN pixels replaced, in place, by each band's value from
    ``fill_values(stretched)`` (called only when there is something to fill)."""
    bad = ~np.isfinite(stretched)
    if bad.any():
        values = fill_values(stretched)
        stretched[bad] = np.broadcast_to(values[:, None, None], stretched.shape)[bad]
    return stretched


def _geometry_problem(shape: tuple[int, int], size: tuple[int, int], fit: str,
                      same_size: bool) -> str | None:
    height, width = shape
    need_y, need_x = ((size[0] + 1) // 2, (size[1] + 1) // 2) if fit == "crop" else (4, 4)
    if height < need_y or width < need_x:
        hint = " (or use --fit resize)" if fit == "crop" else ""
        return (f"too small: {width}x{height} pixels, at least {need_x}x{need_y} needed for "
                f"size {size[1]}x{size[0]}{hint}")
    if same_size and (height, width) != tuple(size):
        return (f"is {width}x{height} pixels, the others are {size[1]}x{size[0]}; choose one "
                "size for all with --size")
    return None


def _size_text(size) -> str:
    return "any" if size is None else f"{size[1]}x{size[0]}"


def _stretch_text(stretch: Stretch) -> str:
    defaults = Stretch(name=stretch.name)
    changed = [f"{f.name}={getattr(stretch, f.name)}" for f in fields(Stretch)
               if f.name != "name" and getattr(stretch, f.name) != getattr(defaults, f.name)]
    return stretch.name + (f" ({', '.join(changed)})" if changed else "")
