"""What ``segment`` writes for one image: the ``.seg.fits`` products, the catalogue, the PNG.

``<name>.seg.fits`` holds the input header with its WCS and provenance keywords, then HDUs
``PROB`` (class, y, x), ``MASK`` (class index per pixel), ``LABELS`` (int32 connected objects)
and ``COVERAGE`` (tiles per pixel). Each file is written under a temporary name and renamed.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone

import numpy as np
from astropy.io import fits
from astropy.table import Table

from galcnn import __version__
from galcnn.data.atomic import atomic_output
from galcnn.data.fitsio import ImagePlanes
from galcnn.plots import pyplot, save_figure
from galcnn.stages.segment.catalogue import celestial_wcs
from galcnn.stages.segment.options import SegmentOptions
from galcnn.stages.segment.tiling import Segmenter

__all__ = ["write_maps", "write_catalogue", "write_overlay"]

_STRUCTURAL = ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "BSCALE",
               "BZERO", "BLANK", "CHECKSUM", "DATASUM", "EXTNAME", "EXTVER", "TFIELDS",
               "ZIMAGE", "ZBITPIX", "ZNAXIS", "ZTILE", "ZCMPTYPE", "ZNAME", "ZVAL", "ZQUANTIZ",
               "ZDITHER0", "ZSIMPLE", "ZTENSION", "ZEXTEND", "ZPCOUNT", "ZGCOUNT", "ZHECKSUM",
               "ZDATASUM", "ZBLANK")


#: Input keywords that would describe the input's own products, not these.
_REPLACED = ("CLASSES",)


def _input_header(header: fits.Header) -> fits.Header:
    """The input header without the keywords that describe its own data layout or
    products."""
    out = fits.Header()
    for card in header.cards:
        key = card.keyword
        if key.startswith(_STRUCTURAL) or key in ("", "END", *_REPLACED):
            continue
        out.append(card, end=True)
    return out


def _wcs_header(header: fits.Header) -> fits.Header:
    wcs = celestial_wcs(header)
    return wcs.to_header() if wcs is not None else fits.Header()


def write_maps(path: str, header: fits.Header, probs, mask, labels, coverage,
               segmenter: Segmenter, options: SegmentOptions, info: dict, source: str,
               hdu_index: int) -> None:
    """The ``.seg.fits`` file."""
    primary = fits.PrimaryHDU(header=_input_header(header))
    provenance = {
        "GALCNNV": (__version__, "galcnn version"),
        "MODELSHA": (segmenter.checksum[:16], "model checkpoint sha256, first 16 hex"),
        "MODEL": os.path.abspath(segmenter.path),  # long values: no room for comments
        "SRCFILE": os.path.abspath(source),
        "CLASSES": ",".join(segmenter.classes),  # the order of PROB planes and MASK values
        "SRCHDU": (hdu_index, "input HDU"),
        "TILE": (info["tile"], "core tile size (pixels)"),
        "HALO": (info["halo"], "context around each tile (pixels)"),
        "BLEND": (info["blend"], "seam blending ramp (pixels)"),
        "RECEPT": (segmenter.radius, "U-Net receptive radius (pixels)"),
        "THRESH": (-1.0 if options.threshold is None else options.threshold,
                   "fg threshold on 1-p(background); -1 argmax"),
        "TTA": (segmenter.pooled, "pooled over the model's symmetry group"),
        "STRETCH": (segmenter.card.preprocess.stretch.name, "stretch applied before the network"),
        "DATE": (datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), "UTC of writing"),
    }
    for key, value in provenance.items():
        primary.header[key] = value
    wcs = _wcs_header(header)
    prob_header = wcs.copy()
    for i, name in enumerate(segmenter.classes):
        prob_header[f"CLASS{i}"] = (name, f"class of plane {i + 1}")
    prob_header["BUNIT"] = ("", "softmax belief")
    mask_header = wcs.copy()
    for i, name in enumerate(segmenter.classes):
        mask_header[f"CLASS{i}"] = (name, f"pixel value {i}")
    extensions = [(probs, prob_header, "PROB"), (mask, mask_header, "MASK"),
                  (labels, wcs.copy(), "LABELS"), (coverage, wcs.copy(), "COVERAGE")]
    with atomic_output(path) as tmp:
        fits.HDUList([primary]).writeto(tmp, overwrite=True)
        for array, extra, name in extensions:
            _stream_image_hdu(tmp, array, extra, name)


def _stream_image_hdu(path: str, array: np.ndarray, extra: fits.Header, name: str,
                      rows: int = 512) -> None:
    """Append ``array`` as an image extension in blocks of rows, so that neither the array
    (possibly memory-mapped) nor its big-endian copy is ever held whole in memory."""
    header = fits.ImageHDU(data=np.zeros((1,) * array.ndim, dtype=array.dtype),
                           name=name).header.copy()
    for axis, length in enumerate(reversed(array.shape)):
        header[f"NAXIS{axis + 1}"] = length
    header.extend(extra, unique=True)
    stream = fits.StreamingHDU(path, header)
    for plane in array.reshape(-1, *array.shape[-2:]):
        for start in range(0, plane.shape[0], rows):
            stream.write(np.ascontiguousarray(plane[start:start + rows]))
    stream.close()


def write_catalogue(path: str, table: Table, fmt: str) -> None:
    with atomic_output(path) as tmp:
        table.write(tmp, format="fits" if fmt == "fits" else "ascii.csv", overwrite=True)


def write_overlay(path: str, planes: ImagePlanes, labels: np.ndarray, table: Table,
                  segmenter: Segmenter, statistics: dict) -> None:
    """A PNG for a person: the stretched image, object outlines and boxes with their class."""
    from skimage.segmentation import find_boundaries

    ny, nx = planes.shape
    step = max(1, int(math.ceil(max(ny, nx) / 2048)))
    stretch = segmenter.card.preprocess.stretch
    image = stretch(planes.window(0, ny, 0, nx), statistics).mean(0)[::step, ::step]
    edges = find_boundaries(labels[::step, ::step], mode="inner")
    plt = pyplot()
    fig, axis = plt.subplots(figsize=(8, 8 * ny / max(nx, 1)))
    low, high = np.nanpercentile(image, [1, 99.5])
    axis.imshow(image, origin="lower", cmap="gray", vmin=low, vmax=high)
    overlay = np.zeros((*edges.shape, 4))
    overlay[edges] = (1.0, 0.3, 0.1, 0.9)
    axis.imshow(overlay, origin="lower")
    for row in table:
        x0, y0 = row["bbox_xmin"] / step, row["bbox_ymin"] / step
        w, h = (row["bbox_xmax"] - row["bbox_xmin"] + 1) / step, \
            (row["bbox_ymax"] - row["bbox_ymin"] + 1) / step
        axis.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), w, h, fill=False, lw=0.6,
                                     color="cyan"))
        axis.text(x0, y0 + h, str(row["predicted"])[:10], color="yellow", fontsize=5)
    axis.set_axis_off()
    axis.set_title(f"{os.path.basename(planes.path)} [{planes.index}]: {len(table)} objects")
    save_figure(fig, path)
