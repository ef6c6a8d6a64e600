"""What ``segment`` writes for one image: the ``.seg.fits`` products, the catalogue, the PNG.

``<name>.seg.fits`` holds the input header with its WCS and provenance keywords, then HDUs
``PROB`` (class, y, x), ``MASK`` (class index per pixel), ``LABELS`` (int32 connected objects)
and ``COVERAGE`` (tiles per pixel). Each file is written under a temporary name and renamed.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np
from astropy.io import fits
from astropy.table import Table

from galcnn.data.atomic import atomic_output
from galcnn.data.fitsheader import set_text, valid_cards, write_cards
from galcnn.data.fitsio import ImagePlanes
from galcnn.plots import plot_labels, pyplot, save_figure
from galcnn.runner.table import write_rows
from galcnn.stages.segment.catalogue import catalogue_columns, celestial_wcs
from galcnn.stages.segment.options import SegmentOptions
from galcnn.stages.segment.tiling import Segmenter

__all__ = ["Maps", "write_maps", "write_catalogue", "write_overlay", "overlay_figure"]

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
    for card in valid_cards(header).cards:
        key = card.keyword
        if key.startswith(_STRUCTURAL) or key in ("", "END", *_REPLACED):
            continue
        out.append(card, end=True)
    return out


def _wcs_header(header: fits.Header) -> fits.Header:
    wcs = celestial_wcs(header)
    return wcs.to_header() if wcs is not None else fits.Header()


class Maps(NamedTuple):
    """One image's per-pixel products, as the ``.seg.fits`` HDUs hold them."""

    probs: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    coverage: np.ndarray


def write_maps(path: str, header: fits.Header, maps: Maps, cards: list,
               segmenter: Segmenter, options: SegmentOptions, info: dict) -> None:
    """The ``.seg.fits`` file: the input's ``header`` (cleaned), the provenance ``cards``,
    the settings the maps were made with, then the maps."""
    primary = fits.PrimaryHDU(header=_input_header(header))
    write_cards(primary.header, cards)
    settings = {
        "TILE": (info["tile"], "core tile size (pixels)"),
        "HALO": (info["halo"], "context around each tile (pixels)"),
        "BLEND": (info["blend"], "seam blending ramp (pixels)"),
        "RECEPT": (segmenter.radius, "U-Net receptive radius (pixels)"),
        "THRESH": (-1.0 if options.threshold is None else options.threshold,
                   "fg threshold on 1-p(background); -1 argmax"),
        "TTA": (segmenter.pooled, "pooled over the model's symmetry group"),
        "DEBLEND": (options.deblend_contrast if options.deblend else -1.0,
                    "deblending contrast; -1 not deblended"),
        "MINAREA": (options.min_area, "smallest object kept (pixels)"),
        "STRETCH": (segmenter.card.preprocess.stretch.name, "stretch applied before the network"),
    }
    write_cards(primary.header, [(key, *value) for key, value in settings.items()])
    wcs = _wcs_header(header)
    prob_header = wcs.copy()
    for i, name in enumerate(segmenter.classes):
        set_text(prob_header, f"CLASS{i}", name, f"class of plane {i + 1}")
    prob_header["BUNIT"] = ("", "softmax belief")
    mask_header = wcs.copy()
    for i, name in enumerate(segmenter.classes):
        set_text(mask_header, f"CLASS{i}", name, f"pixel value {i}")
    extensions = [(maps.probs, prob_header, "PROB"), (maps.mask, mask_header, "MASK"),
                  (maps.labels, wcs.copy(), "LABELS"), (maps.coverage, wcs.copy(), "COVERAGE")]
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


def write_catalogue(path: str, table: Table, fmt: str,
                    meta: list[tuple[str, object, str]]) -> None:
    """The catalogue as CSV or as a FITS table with the provenance keywords (``meta``)."""
    columns = catalogue_columns([name[2:] for name in table.colnames if name.startswith("p_")])
    rows = ({name: row[name] for name in table.colnames} for row in table)
    write_rows(path, columns, rows, fmt=fmt, meta=meta)


#: Most objects whose numbers the overlay writes; beyond it colours alone say the class.
MAX_LABELLED = 150


def write_overlay(path: str, planes: ImagePlanes, labels: np.ndarray, table: Table,
                  segmenter: Segmenter, statistics: dict) -> None:
    """``<name>.png``: see :func:`overlay_figure`."""
    ny, nx = planes.shape
    step = max(1, int(math.ceil(max(ny, nx) / 2048)))
    stretch = segmenter.card.preprocess.stretch
    image = stretch(planes.window(0, ny, 0, nx), statistics).mean(0)[::step, ::step]
    title = f"{os.path.basename(planes.path)} [HDU {planes.index}]"
    save_figure(overlay_figure(image, np.asarray(labels[::step, ::step]), table,
                               list(segmenter.classes[1:]), title, step), path)


def overlay_figure(image: np.ndarray, small: np.ndarray, table: Table, foreground: list[str],
                   title: str, step: int = 1):
    """For a person: the stretched ``image`` (every ``step``-th pixel) with each object
    outlined in the colour of its class (a legend gives colours and counts) and numbered with
    its catalogue ``id``; text scales with the image's size on the page and stays inside the
    frame. Returns the matplotlib figure."""
    from matplotlib.patches import Patch
    from skimage.morphology import dilation
    from skimage.segmentation import find_boundaries

    colours = _class_colours(foreground)
    class_of = np.zeros(len(table) + 1, dtype=np.int64)  # label -> foreground class index
    if len(table):
        class_of[np.asarray(table["id"])] = [foreground.index(c) for c in table["predicted"]]
    height, width = image.shape
    inches = float(np.clip(width / 55, 9, 16))
    points_per_pixel = inches * 72 / width
    outline = np.where(find_boundaries(small, mode="inner"), small, 0)
    if points_per_pixel > 0.7:  # a small field's outlines grow a pixel outwards, to show
        outline = np.where(outline > 0, outline, dilation(outline, np.ones((3, 3), bool)))
    edges = outline > 0
    overlay = np.zeros((*edges.shape, 4))
    overlay[edges] = colours[class_of[outline[edges]]]

    plt = pyplot()
    fig, axis = plt.subplots(figsize=(inches, inches * height / max(width, 1)))
    low, high = np.nanpercentile(image, [1, 99.5]) if np.isfinite(image).any() else (0, 1)
    axis.imshow(image, origin="lower", cmap="gray", vmin=low, vmax=high)
    axis.imshow(overlay, origin="lower", interpolation="nearest")
    fontsize = float(np.clip(9 * points_per_pixel, 5, 11))
    labelled = len(table) <= MAX_LABELLED
    if labelled:
        for row in table:
            x = (row["bbox_xmax"] + 1) / step
            y = (row["bbox_ymax"] + 1) / step
            right = x > 0.92 * width  # near the right edge: text ends at the box instead
            top = y > 0.96 * height
            axis.text(row["bbox_xmin"] / step if right else x, row["bbox_ymin"] / step
                      if top else y, str(row["id"]), color=colours[class_of[row["id"]]],
                      fontsize=fontsize, ha="right" if right else "left",
                      va="top" if top else "bottom", clip_on=True)
    axis.set_xlim(-0.5, width - 0.5)
    axis.set_ylim(-0.5, height - 0.5)
    axis.set_xticks([])
    axis.set_yticks([])
    counts = {name: int(np.sum(table["predicted"] == name)) if len(table) else 0
              for name in foreground}
    handles = [Patch(facecolor=colours[k], edgecolor="none",
                     label=plot_labels([f"{name} ({counts[name]})"])[0])
               for k, name in enumerate(foreground)]
    axis.legend(handles=handles, loc="upper center", ncol=min(len(handles), 5),
                fontsize=max(fontsize, 8), frameon=False, bbox_to_anchor=(0.5, -0.005),
                borderaxespad=0.2)  # just under the image, whatever its shape
    note = "" if labelled else f"; numbers omitted above {MAX_LABELLED} objects"
    axis.set_title(f"{title}: {len(table)} objects, outlined in the colour of their "
                   f"class{note}", fontsize=max(fontsize, 8))
    return fig


def _class_colours(foreground: list[str]) -> np.ndarray:
    """RGBA colours, one per foreground class, that stand out on a grey image: bright ones
    of tab10 for the classes (not its blue, nor its brown, dark on grey), cyan for
    ``other`` (stars and the rest)."""
    from matplotlib import colormaps

    palette = [c for i, c in enumerate(colormaps["tab10"].colors) if i not in (0, 5)]
    if len(foreground) > len(palette):
        palette = list(colormaps["tab20"].colors)
    colours = np.ones((len(foreground), 4))
    colours[:, :3] = [palette[k % len(palette)] for k in range(len(foreground))]
    if foreground and foreground[-1] == "other":
        colours[-1, :3] = (0.0, 0.9, 1.0)
    return colours
