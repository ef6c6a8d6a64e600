"""Read images from FITS files as float32 ``(bands, y, x)`` arrays, bad pixels made explicit.

Every reading quirk of real survey files is handled here and nowhere else: the image HDU is
found automatically or chosen by number/EXTNAME, tile-compressed and gzipped files read the
same as plain ones, BSCALE/BZERO and BLANK are applied, big-endian data become native, and
NaN/inf/BLANK pixels become NaN and are counted. Arrays keep FITS row order (row 0 is the
bottom of the image); nothing is flipped.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS, FITSFixedWarning

from galcnn.data.fitsheader import valid_cards

__all__ = ["FitsImage", "FitsReadError", "read_image", "parse_hdu", "centre_radec",
           "max_cutout_pixels", "MAX_TILE_PIXELS"]

_IMAGE_HDU_TYPES = (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)

DEFAULT_MAX_PIXELS = 2**26
"""The most pixels (all bands together) a cutout may declare: 8192 x 8192, 256 MiB as
float32, far beyond any survey cutout. A header that declares more is refused before its
data are decoded: a gzip or tile-compressed file of a few kilobytes can decode to gigabytes."""

MAX_TILE_PIXELS = 2**26
"""The largest compression tile an image may declare (fpack's tiles are rows, or squares of
hundreds of pixels); decoding one tile needs a buffer of its size, whatever the file's."""


def max_cutout_pixels() -> int:
    """The cutout limit in force: ``GALCNN_MAX_PIXELS`` (``galcnn --max-pixels N``), else
    :data:`DEFAULT_MAX_PIXELS`."""
    try:
        return int(os.environ.get("GALCNN_MAX_PIXELS") or DEFAULT_MAX_PIXELS)
    except ValueError:
        return DEFAULT_MAX_PIXELS


def _check_declared(selected, path: str, index: int, max_pixels: int | None) -> None:
    """Refuse, from its header alone, an image whose decoding would cost more than any
    cutout (``max_pixels``; None: no limit, a field) or whose compression tiles are huge."""
    header = selected.header
    axes = [int(header.get(f"NAXIS{i}", 0) or 0)
            for i in range(1, int(header.get("NAXIS", 0) or 0) + 1)]
    pixels = int(np.prod(axes, dtype=np.float64)) if axes else 0
    shape = "x".join(str(a) for a in axes)
    if max_pixels is not None and pixels > max_pixels:
        raise FitsReadError(path, f"HDU {index} declares {shape} pixels ({pixels * 4 / 2**30:.1f} "
                                  f"GiB as float32), more than a cutout needs: refused before "
                                  f"decoding (limit {max_pixels:,} pixels; galcnn --max-pixels N "
                                  "to raise it)")
    tile = getattr(selected, "tile_shape", None) if isinstance(selected, fits.CompImageHDU) \
        else None
    if tile is not None and np.prod([int(t) for t in tile], dtype=np.float64) > MAX_TILE_PIXELS:
        raise FitsReadError(path, f"HDU {index} declares compression tiles of "
                                  f"{'x'.join(str(int(t)) for t in tile)} pixels: refused before "
                                  f"decoding (limit {MAX_TILE_PIXELS:,} pixels a tile)")


class FitsReadError(ValueError):
    """A file that cannot give an image; the message names the file and the problem."""

    def __init__(self, path: str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass
class FitsImage:
    """One image read from one HDU (or one HDU per band of several files)."""

    data: np.ndarray
    """float32, native byte order, shape ``(bands, y, x)``; bad pixels are NaN."""
    paths: list[str]
    hdu: int
    extname: str
    header: fits.Header
    band_names: list[str] = field(default_factory=list)
    n_bad: int = 0

    @property
    def n_bands(self) -> int:
        return self.data.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape[1], self.data.shape[2]


def parse_hdu(value: str | int | None) -> int | str | None:
    """Turn a user's ``--hdu`` value into an HDU index, an EXTNAME, or None (automatic)."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip()
    if text == "" or text.lower() == "auto":
        return None
    try:
        index = int(text)
    except ValueError:
        return text
    if index < 0:
        raise ValueError(f"HDU number must be >= 0, got {index}")
    return index


def _select_hdu(hdul: fits.HDUList, hdu: int | str | None, path: str) -> int:
    if hdu is None:
        for index, candidate in enumerate(hdul):
            if isinstance(candidate, _IMAGE_HDU_TYPES) and candidate.header.get("NAXIS", 0) >= 2:
                return index
        raise FitsReadError(path, _truncation(path) or
                            f"no image HDU with 2-D or 3-D data among {len(hdul)} HDU(s)")
    if isinstance(hdu, int):
        if hdu >= len(hdul):
            raise FitsReadError(path, f"HDU {hdu} does not exist (file has {len(hdul)} HDU(s))")
        index = hdu
    else:
        names = [h.name.upper() for h in hdul]
        if hdu.upper() not in names:
            raise FitsReadError(path, f"no HDU with EXTNAME {hdu!r} (has {', '.join(names)})")
        index = names.index(hdu.upper())
    if not isinstance(hdul[index], _IMAGE_HDU_TYPES):
        raise FitsReadError(path, f"HDU {index} is a table, not an image")
    return index


def _physical_blank(header: fits.Header) -> float | None:
    blank = header.get("BLANK")
    if blank is None:
        return None
    return blank * header.get("BSCALE", 1.0) + header.get("BZERO", 0.0)


def _as_cube(data: np.ndarray, path: str, index: int) -> np.ndarray:
    """Drop degenerate leading axes (radio STOKES/FREQ) and return ``(bands, y, x)``."""
    while data.ndim > 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.ndim != 3:
        raise FitsReadError(
            path, f"HDU {index} has {data.ndim}-D data {data.shape}; expected a 2-D plane "
            "or a 3-D (bands, y, x) cube")
    if data.size == 0:
        raise FitsReadError(path, f"HDU {index} has an empty image {data.shape}")
    return data


def _truncation(path: str) -> str | None:
    """Why a FITS file (not gzip/bzip2) is truncated, or None: a FITS file is a whole number of
    2880-byte blocks."""
    size = os.path.getsize(path)
    if path.lower().endswith((".gz", ".bz2")) or not size % 2880:
        return None
    return (f"truncated file: {size} bytes is not a whole number of 2880-byte FITS blocks "
            "and the data cannot be read")


def _starts_like_fits(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(9) == b"SIMPLE  ="


def _describe_exception(exc: Exception, path: str) -> str:
    text = str(exc)
    truncated = _truncation(path)
    if truncated and not isinstance(exc, OSError):
        return truncated
    if (isinstance(exc, TypeError) and "buffer is too small" in text) or \
            (isinstance(exc, ValueError) and "cannot reshape array" in text):
        return "truncated file: the data are shorter than the header says"
    if isinstance(exc, OSError) and ("SIMPLE" in text or "corrupt" in text.lower()):
        if truncated and _starts_like_fits(path):
            return "truncated file: it ends inside its primary header"
        return "not a FITS file (no valid primary header)"
    if isinstance(exc, (EOFError,)) or "Compressed file ended" in text:
        return "truncated compressed file"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "rror" in line and "reported errors" not in line]
    detail = (errors or lines or ["no detail"])[0]
    if detail.startswith("Unfixable error: "):
        detail = "a header card it cannot repair: " + detail[len("Unfixable error: "):]
    return f"unreadable FITS ({type(exc).__name__}: {detail})"


def _check_file(path: str) -> None:
    """One-line reasons for the paths that are not worth handing to astropy."""
    if not os.path.exists(path):
        raise FitsReadError(path, "file not found")
    if os.path.isdir(path):
        raise FitsReadError(path, "is a directory, not a FITS file")
    if os.path.getsize(path) == 0:
        raise FitsReadError(path, "empty file (0 bytes)")


def _read_one(path: str, hdu: int | str | None, max_pixels: int | None
              ) -> tuple[np.ndarray, int, int, str, fits.Header]:
    _check_file(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AstropyWarning)
            with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
                index = _select_hdu(hdul, hdu, path)
                selected = hdul[index]
                _check_declared(selected, path, index, max_pixels)
                header = selected.header  # in memory; outlives the closed file
                raw = selected.data
                if raw is None:
                    raise FitsReadError(path, f"HDU {index} has no data")
                raw = np.asarray(raw)
                extname = selected.name
        for warning in caught:
            if "truncated" in str(warning.message).lower():
                raise FitsReadError(path, "truncated file: the data are shorter than the header says")
    except FitsReadError:
        raise
    except Exception as exc:  # astropy raises many types for corrupt files
        raise FitsReadError(path, _describe_exception(exc, path)) from exc

    raw = _as_cube(raw, path, index)
    with np.errstate(over="ignore"):  # values beyond float32 are named below
        data = raw.astype(np.float32)  # native byte order, a copy
    if np.issubdtype(raw.dtype, np.integer):  # no NaN or inf: only BLANK marks bad pixels
        blank = _physical_blank(header)
        if blank is None:
            return data, 0, index, extname, header
        bad = raw == blank
    else:
        bad = ~np.isfinite(data)
    n_bad = int(np.count_nonzero(bad))
    if n_bad and raw.dtype.itemsize > 4 and np.isfinite(raw[bad]).any():
        largest = float(np.max(np.abs(raw[bad & np.isfinite(raw)])))
        raise FitsReadError(path, f"pixel values beyond the float32 range (largest |value| "
                                  f"{largest:.3g}); rescale the image")
    if n_bad:
        data[bad] = np.nan
    return data, n_bad, index, extname, header


def _band_names_from_header(header: fits.Header, n_bands: int) -> list[str]:
    bands = header.get("BANDS")
    if isinstance(bands, str):
        names = [b.strip() for b in bands.split(",") if b.strip()]
        if len(names) == n_bands:
            return names
    if n_bands == 1 and isinstance(header.get("FILTER"), str):
        return [header["FILTER"].strip()]
    return []


def read_image(paths: str | os.PathLike | list, *, hdu: int | str | None = None,
               max_pixels: int | None = -1) -> FitsImage:
    """Read one image; several paths are one band each, stacked in the given order.
    ``max_pixels``: refuse an image that declares more (-1: :func:`max_cutout_pixels`;
    None: no limit).

    Raises
    ------
    FitsReadError
        With a one-line message naming the file and the problem.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    planes, bad_counts, band_names = [], [], []
    first_index, first_extname, first_header = 0, "", None
    limit = max_cutout_pixels() if max_pixels == -1 else max_pixels
    for position, path in enumerate(paths):
        data, n_bad, index, extname, header = _read_one(path, hdu, limit)
        if len(paths) > 1:
            if data.shape[0] != 1:
                raise FitsReadError(path, f"is a {data.shape[0]}-band cube; one file per band "
                                          "needs single planes")
            if planes and data.shape[1:] != planes[0].shape[1:]:
                raise FitsReadError(path, f"band image is {data.shape[2]}x{data.shape[1]}, the "
                                          f"first band is {planes[0].shape[2]}x{planes[0].shape[1]}")
        if position == 0:
            first_index, first_extname, first_header = index, extname, header
        planes.append(data)
        bad_counts.append(n_bad)
        if len(paths) > 1:
            band_names.extend(_band_names_from_header(header, 1))
    cube = np.concatenate(planes) if len(planes) > 1 else planes[0]
    n_bad = sum(bad_counts)
    if len(paths) == 1:
        band_names = _band_names_from_header(first_header, cube.shape[0])
    elif len(band_names) != cube.shape[0]:
        band_names = []
    return FitsImage(data=cube, paths=paths, hdu=first_index, extname=first_extname,
                     header=first_header, band_names=band_names, n_bad=n_bad)


def centre_radec(header: fits.Header, shape: tuple[int, int]) -> tuple[float, float]:
    """ICRS RA/Dec (degrees) of the image centre, or NaNs when the header has no usable WCS."""
    if not any(str(header.get(f"CTYPE{i}", "")).strip() for i in (1, 2, 3)):
        return float("nan"), float("nan")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            warnings.simplefilter("ignore", AstropyWarning)
            wcs = WCS(header).celestial
            if not wcs.has_celestial:
                return float("nan"), float("nan")
            ny, nx = shape
            sky = wcs.pixel_to_world((nx - 1) / 2.0, (ny - 1) / 2.0)
            if sky.frame.name != "icrs":
                sky = sky.icrs
            return float(sky.ra.deg), float(sky.dec.deg)
    except Exception:  # a broken WCS must not lose the image
        return float("nan"), float("nan")


class ImagePlanes:
    """Windows of one image HDU read on demand, for images too large to hold at once.

    Uncompressed files are memory-mapped and tile-compressed ones (``.fz``) decompress only
    the tiles a window touches (``hdu.section``). Windows come back as float32
    ``(bands, y, x)`` with NaN for NaN/inf/BLANK pixels, like :func:`read_image`.
    """

    def __init__(self, hdul: fits.HDUList, index: int, path: str):
        self.path, self.index = path, index
        self.hdu = hdul[index]
        _check_declared(self.hdu, path, index, None)  # a field may be any size; its tiles not
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            self.header = valid_cards(self.hdu.header)
        """The image's header without cards no reader accepts (they stay out of outputs)."""
        self.extname = self.hdu.name
        shape = tuple(int(self.header.get(f"NAXIS{i}", 0)) for i in
                      range(int(self.header.get("NAXIS", 0)), 0, -1))
        lead = shape[:-2]
        while len(lead) > 1 and lead[0] == 1:
            lead = lead[1:]
        if len(lead) > 1 or len(shape) < 2 or 0 in shape:
            raise FitsReadError(path, f"HDU {index} has data of shape {shape}; expected a "
                                "2-D plane or a 3-D (bands, y, x) cube")
        self._prefix = (0,) * (len(shape) - 2 - len(lead))
        self.n_bands = lead[0] if lead else 1
        self.shape = shape[-2:]
        self._cube = bool(lead)
        self._blank = _physical_blank(self.header) if \
            int(self.header.get("BITPIX", -32)) > 0 else None
        self._stored = None  # uncompressed integers with BZERO/BSCALE/BLANK: scaled here,
        if not isinstance(self.hdu, fits.CompImageHDU) and any(  # astropy's memory map won't
                k in self.header for k in ("BZERO", "BSCALE", "BLANK")):
            self._stored = fits.open(path, memmap=True, do_not_scale_image_data=True)[index]
            self._scale = (float(self.header.get("BSCALE", 1.0)),
                           float(self.header.get("BZERO", 0.0)))
            blank = self.header.get("BLANK")  # compared with the stored integers
            self._blank = int(blank) if blank is not None else None

    def window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` (clipped to the image) of every band."""
        y0, x0 = max(y0, 0), max(x0, 0)
        y1, x1 = min(y1, self.shape[0]), min(x1, self.shape[1])
        key = self._prefix + ((slice(None),) if self._cube else ()) + \
            (slice(y0, y1), slice(x0, x1))
        try:
            hdu = self.hdu if self._stored is None else self._stored
            raw = np.asarray(hdu.section[key])
        except Exception as exc:  # corrupt tiles surface only when read
            raise FitsReadError(self.path, _describe_exception(exc, self.path)) from exc
        raw = raw if self._cube else raw[np.newaxis]
        if self._stored is not None:
            scale, zero = self._scale
            data = (raw * scale + zero).astype(np.float32)
        else:
            data = raw.astype(np.float32)
        bad = ~np.isfinite(data)
        if self._blank is not None and np.issubdtype(raw.dtype, np.integer):
            bad |= raw == self._blank
        data[bad] = np.nan
        return data


def image_hdus(path: str, hdu: int | str | None = None
               ) -> tuple[fits.HDUList, list[ImagePlanes]]:
    """Open ``path`` and return its image HDUs with data (every one, or the one chosen).

    The caller closes the returned HDU list. Raises :class:`FitsReadError`.
    """
    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            hdul = fits.open(path, memmap=True)
            hdul.verify("silentfix+ignore")  # a card it cannot fix: left out of outputs
    except Exception as exc:
        raise FitsReadError(path, _describe_exception(exc, path)) from exc
    try:
        if hdu is not None:
            indices = [_select_hdu(hdul, hdu, path)]
        else:
            indices = [i for i, h in enumerate(hdul) if isinstance(h, _IMAGE_HDU_TYPES)
                       and h.header.get("NAXIS", 0) >= 2]
            if not indices:
                raise FitsReadError(path, f"no image HDU with 2-D or 3-D data among "
                                          f"{len(hdul)} HDU(s)")
        return hdul, [ImagePlanes(hdul, i, path) for i in indices]
    except Exception:
        hdul.close()
        raise
