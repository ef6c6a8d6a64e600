"""``galcnn segment``: U-Net class-probability maps, masks, object label maps and catalogues.

Images of any size are processed in tiles: each tile's core is surrounded by a halo of at
least the network's receptive radius, and tile corners sit on multiples of the U-Net's
down-sampling factor, so every output pixel sees exactly the context it would see in one
pass over the whole image: the result does not depend on the tile size. Cores are blended
into their neighbours with linear ramps, which only matters when a user chooses a halo
smaller than the receptive radius. The stretch is measured once per image (on the whole
image, or a sample of windows of a large one) and applied to every tile. Probabilities are
accumulated in memory-mapped scratch files for large images, so memory stays bounded.

For each input image HDU, one new file ``<name>.seg.fits`` holds the input header with its
WCS, then HDUs ``PROB`` (class, y, x), ``MASK`` (class index per pixel), ``LABELS`` (int32
connected objects) and ``COVERAGE`` (tiles per pixel), with provenance keywords; a catalogue
``<name>.cat.csv`` (or ``.cat.fits``) has one row per object.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import torch
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS, FITSFixedWarning
from skimage import measure

from galcnn import __version__
from galcnn.checkpoint import file_checksum, load_model
from galcnn.fitsio import FitsReadError, ImagePlanes, image_hdus
from galcnn.inputs import expand_inputs, sources_from_files
from galcnn.masks import drop_small
from galcnn.normalise import Stretch
from galcnn.runtime import amp_dtype, autocast, select_device

__all__ = ["SegmentOptions", "SegmentResult", "SegmentError", "segment", "segment_image",
           "CATALOGUE_COLUMNS", "LOG_COLUMNS"]

logger = logging.getLogger("galcnn")

#: Catalogue columns in order; ``p_<class>`` columns follow ``flux`` (foreground classes only).
CATALOGUE_COLUMNS = ("id", "x", "y", "ra", "dec", "area", "bbox_xmin", "bbox_ymin",
                     "bbox_xmax", "bbox_ymax", "flux", "predicted")
#: ``segment.csv`` in the output directory: one row per input image HDU, appended as done.
LOG_COLUMNS = ("file", "hdu", "output", "catalogue", "n_objects", "seconds", "status")
IN_MEMORY_BYTES = 256 * 2**20
STATS_PIXELS = 16 * 2**20


class SegmentError(ValueError):
    """Nothing can be segmented (bad model or options); one line."""


@dataclass
class SegmentOptions:
    tile: int = 256
    """Core tile size in pixels (rounded up to the U-Net's down-sampling factor)."""
    halo: int | None = None
    """Context on each side; None: the receptive radius (exact, tile-size independent)."""
    batch_size: int = 8
    threshold: float | None = None
    """A pixel is foreground when 1 - p(background) >= threshold; None: the arg-max class."""
    min_area: int = 5
    watershed: bool = False
    tta: bool = False
    hdu: int | str | None = None
    catalogue_format: str = "csv"
    overlay: bool = False
    overwrite: bool = False
    device: str = "auto"
    amp: bool = True

    def check(self) -> None:
        if self.tile < 8:
            raise SegmentError("--tile must be at least 8 pixels")
        if self.halo is not None and self.halo < 0:
            raise SegmentError("--halo must be >= 0")
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise SegmentError("--threshold must be between 0 and 1")
        if self.catalogue_format not in ("csv", "fits"):
            raise SegmentError("--catalogue-format must be csv or fits")


@dataclass
class SegmentResult:
    out_dir: str
    n_images: int = 0
    n_objects: int = 0
    n_skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    megapixels: float = 0.0

    @property
    def n_failed(self) -> int:
        return len(self.failures)


@dataclass
class _Model:
    """The U-Net with what tiling needs to know about it."""

    model: torch.nn.Module
    card: dict
    path: str
    checksum: str
    device: torch.device
    dtype: torch.dtype | None
    multiple: int
    radius: int

    @property
    def classes(self) -> list[str]:
        return list(self.card["classes"])

    @property
    def stretch(self) -> Stretch:
        return Stretch.from_dict(self.card["stretch"])


def _load(model_path: str, options: SegmentOptions) -> _Model:
    from galcnn.checkpoint import CheckpointError

    try:
        device = select_device(options.device)
        model, card = load_model(model_path, device)
        checksum = file_checksum(model_path)
    except (CheckpointError, ValueError) as exc:
        raise SegmentError(str(exc)) from exc
    if card.get("task") != "segment":
        raise SegmentError(f"{model_path}: a {card.get('task', 'classify')} model; segment "
                           "needs a U-Net (galcnn train --task segment)")
    if not options.tta:
        model.elements = [(0, False)]
    net = model.net
    return _Model(model, card, model_path, checksum, device, amp_dtype(device, options.amp),
                  net.multiple, net.receptive_radius())


def _round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def tile_grid(shape: tuple[int, int], tile: int) -> Iterator[tuple[int, int]]:
    """Top-left corners ``(y0, x0)`` of the core tiles that cover ``shape``."""
    for y0 in range(0, shape[0], tile):
        for x0 in range(0, shape[1], tile):
            yield y0, x0


def _ramp(length: int, core: int, blend: int) -> np.ndarray:
    """Weights along one axis of a tile: 1 on the core, linear ramps ``blend`` into the halo."""
    weights = np.zeros(length, dtype=np.float32)
    start = (length - core) // 2
    weights[start:start + core] = 1.0
    for step in range(1, blend + 1):
        value = 1.0 - step / (blend + 1)
        weights[start - step] = value
        weights[start + core - 1 + step] = value
    return weights


def _padded_window(planes: ImagePlanes, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """``[y0:y1, x0:x1]`` with the image mirrored beyond its edges (same for every tiling)."""
    ny, nx = planes.shape
    inside = planes.window(y0, y1, x0, x1)
    pad = ((0, 0), (max(0, -y0), max(0, y1 - ny)), (max(0, -x0), max(0, x1 - nx)))
    return np.pad(inside, pad, mode="symmetric") if any(p != (0, 0) for p in pad) else inside


def _sample_for_statistics(planes: ImagePlanes) -> np.ndarray:
    """The whole image when small, else a mosaic of windows spread over it."""
    ny, nx = planes.shape
    if ny * nx <= STATS_PIXELS:
        return planes.window(0, ny, 0, nx)
    side = 1024
    n = 4
    windows = []
    for i in range(n):
        for j in range(n):
            y0 = int((ny - side) * i / (n - 1)) if ny > side else 0
            x0 = int((nx - side) * j / (n - 1)) if nx > side else 0
            windows.append(planes.window(y0, y0 + side, x0, x0 + side))
    height = min(w.shape[1] for w in windows)
    return np.concatenate([w[:, :height] for w in windows], axis=2)


def _scratch(shape: tuple[int, ...], dtype, directory: str, stack: list) -> np.ndarray:
    """A zeroed array in memory, or memory-mapped in ``directory`` when it is large."""
    if int(np.prod(shape)) * np.dtype(dtype).itemsize <= IN_MEMORY_BYTES:
        return np.zeros(shape, dtype=dtype)
    handle = tempfile.NamedTemporaryFile(dir=directory, prefix=".galcnn-scratch-", delete=False)
    handle.close()
    stack.append(handle.name)
    return np.memmap(handle.name, dtype=dtype, mode="w+", shape=shape)


def _probabilities(planes: ImagePlanes, net: _Model, options: SegmentOptions, scratch_dir: str,
                   scratch: list) -> tuple[np.ndarray, np.ndarray, dict]:
    """Class probabilities ``(classes, y, x)`` and coverage, tile by tile."""
    ny, nx = planes.shape
    m = net.multiple
    tile = _round_up(options.tile, m)
    halo = _round_up(net.radius if options.halo is None else options.halo, m)
    blend = min(halo, tile) // 2
    stretch = net.stretch
    sample = _sample_for_statistics(planes)
    statistics = stretch.statistics(sample)
    fill = np.nan_to_num(np.nanmedian(stretch(sample, statistics).reshape(len(sample), -1),
                                      axis=1))
    del sample
    n_classes = len(net.classes)
    probs = _scratch((n_classes, ny, nx), np.float32, scratch_dir, scratch)
    weights = _scratch((ny, nx), np.float32, scratch_dir, scratch)
    coverage = np.zeros((ny, nx), dtype=np.int16)
    size = tile + 2 * halo
    ramp = _ramp(size, tile, blend)
    window_weight = ramp[:, None] * ramp[None, :]

    def run(batch: list[tuple[int, int, np.ndarray]]) -> None:
        x = torch.from_numpy(np.stack([b[2] for b in batch])).to(net.device)
        with torch.inference_mode(), autocast(net.device, net.dtype):
            out = net.model(x, pooled=True)
        out = out.float().softmax(1).cpu().numpy()
        for (y0, x0, _), p in zip(batch, out):
            wy0, wx0 = y0 - halo, x0 - halo
            ys, ye = max(wy0, 0), min(wy0 + size, ny)
            xs, xe = max(wx0, 0), min(wx0 + size, nx)
            w = window_weight[ys - wy0:ye - wy0, xs - wx0:xe - wx0]
            probs[:, ys:ye, xs:xe] += p[:, ys - wy0:ye - wy0, xs - wx0:xe - wx0] * w
            weights[ys:ye, xs:xe] += w
            coverage[ys:ye, xs:xe] += (w > 0).astype(np.int16)

    batch: list[tuple[int, int, np.ndarray]] = []
    for y0, x0 in tile_grid((ny, nx), tile):
        window = _padded_window(planes, y0 - halo, y0 + tile + halo, x0 - halo,
                                x0 + tile + halo)
        stretched = stretch(window, statistics)
        bad = ~np.isfinite(stretched)
        if bad.any():
            stretched[bad] = np.broadcast_to(fill[:, None, None], stretched.shape)[bad]
        batch.append((y0, x0, stretched))
        if len(batch) == options.batch_size:
            run(batch)
            batch = []
    if batch:
        run(batch)
    for start in range(0, ny, 512):
        rows = slice(start, min(start + 512, ny))
        probs[:, rows] /= np.maximum(weights[rows], 1e-12)
    info = {"tile": tile, "halo": halo, "blend": blend, "stretch": statistics}
    return probs, coverage, info


def _mask(probs: np.ndarray, threshold: float | None) -> np.ndarray:
    """Class index per pixel: arg-max, or the best foreground class where it is confident."""
    ny = probs.shape[1]
    mask = np.zeros(probs.shape[1:], dtype=np.int16)
    for start in range(0, ny, 512):
        p = np.asarray(probs[:, start:start + 512])
        if threshold is None:
            mask[start:start + 512] = p.argmax(0)
        else:
            foreground = 1.0 - p[0] >= threshold
            mask[start:start + 512] = np.where(foreground, 1 + p[1:].argmax(0), 0)
    return mask


def label_objects(mask: np.ndarray, min_area: int = 5, watershed: bool = False) -> np.ndarray:
    """int32 map of connected foreground objects (8-connected), small ones removed; with
    ``watershed``, touching objects are split at the saddles of their distance transform."""
    labels = drop_small(measure.label(mask > 0, connectivity=2).astype(np.int32), min_area)
    foreground = labels > 0
    if watershed and labels.max():
        from scipy import ndimage
        from skimage.feature import peak_local_max
        from skimage.segmentation import watershed as watershed_transform

        distance = ndimage.distance_transform_edt(foreground)
        peaks = peak_local_max(distance, min_distance=3, labels=labels, exclude_border=False)
        markers = np.zeros(labels.shape, dtype=np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        labels = watershed_transform(-distance, markers, mask=foreground).astype(np.int32)
    return labels


def catalogue(labels: np.ndarray, probs: np.ndarray, planes: ImagePlanes, classes: list[str],
              header: fits.Header, background: np.ndarray | None = None) -> Table:
    """One row per object of ``labels``: centroid, RA/Dec, area, box, flux, mean beliefs."""
    n = int(labels.max())
    regions = measure.regionprops(labels)
    flux = np.zeros(n + 1)
    beliefs = np.zeros((len(classes), n + 1))
    ny = labels.shape[0]
    for start in range(0, ny, 512):
        stop = min(start + 512, ny)
        block = labels[start:stop].ravel()
        data = planes.window(start, stop, 0, labels.shape[1])
        if background is not None:
            data = data - np.asarray(background, dtype=np.float32)[:, None, None]
        flux += np.bincount(block, weights=np.nan_to_num(data.sum(0)).ravel(), minlength=n + 1)
        for c in range(len(classes)):
            beliefs[c] += np.bincount(block, weights=np.asarray(probs[c, start:stop]).ravel(),
                                      minlength=n + 1)
    area = np.bincount(labels.ravel(), minlength=n + 1).astype(np.float64)
    beliefs = beliefs / np.maximum(area, 1)[None]
    columns: dict[str, list] = {name: [] for name in CATALOGUE_COLUMNS}
    for region in regions:
        i = region.label
        y, x = region.centroid
        ymin, xmin, ymax, xmax = region.bbox
        columns["id"].append(i)
        columns["x"].append(float(x))
        columns["y"].append(float(y))
        columns["area"].append(int(region.area))
        columns["bbox_xmin"].append(xmin)
        columns["bbox_ymin"].append(ymin)
        columns["bbox_xmax"].append(xmax - 1)
        columns["bbox_ymax"].append(ymax - 1)
        columns["flux"].append(float(flux[i]))
        columns["predicted"].append(classes[1 + int(np.argmax(beliefs[1:, i]))])
    ra, dec = _sky(header, np.array(columns["x"]), np.array(columns["y"]))
    columns["ra"], columns["dec"] = list(ra), list(dec)
    table = Table({k: columns[k] for k in CATALOGUE_COLUMNS})
    if not len(table):
        table = Table(names=CATALOGUE_COLUMNS,
                      dtype=("i4", "f8", "f8", "f8", "f8", "i8", "i8", "i8", "i8", "i8", "f8",
                             "U32"))
    for c, name in enumerate(classes[1:], start=1):
        table[f"p_{name}"] = [float(beliefs[c, region.label]) for region in regions]
    return table


def _celestial(header: fits.Header) -> WCS | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header).celestial
        except Exception:
            return None
    return wcs if wcs.has_celestial else None


def _sky(header: fits.Header, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    wcs = _celestial(header)
    if wcs is None or not len(x):
        return np.full(len(x), np.nan), np.full(len(x), np.nan)
    ra, dec = wcs.pixel_to_world_values(x, y)
    return np.asarray(ra, dtype=float), np.asarray(dec, dtype=float)


_STRUCTURAL = ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "BSCALE",
               "BZERO", "BLANK", "CHECKSUM", "DATASUM", "EXTNAME", "EXTVER", "TFIELDS",
               "ZIMAGE", "ZBITPIX", "ZNAXIS", "ZTILE", "ZCMPTYPE", "ZNAME", "ZVAL", "ZQUANTIZ",
               "ZDITHER0", "ZSIMPLE", "ZTENSION", "ZEXTEND", "ZPCOUNT", "ZGCOUNT", "ZHECKSUM",
               "ZDATASUM", "ZBLANK")


def _input_header(header: fits.Header) -> fits.Header:
    """The input header without the keywords that describe its own data layout."""
    out = fits.Header()
    for card in header.cards:
        key = card.keyword
        if key.startswith(_STRUCTURAL) or key in ("", "END"):
            continue
        out.append(card, end=True)
    return out


def _wcs_header(header: fits.Header) -> fits.Header:
    wcs = _celestial(header)
    return wcs.to_header() if wcs is not None else fits.Header()


def _write_outputs(path: str, header: fits.Header, probs, mask, labels, coverage,
                   net: _Model, options: SegmentOptions, info: dict, source: str,
                   hdu_index: int) -> None:
    """The ``.seg.fits`` file, written under a temporary name and renamed when complete."""
    primary = fits.PrimaryHDU(header=_input_header(header))
    provenance = {
        "GALCNNV": (__version__, "galcnn version"),
        "MODELSHA": (net.checksum[:16], "model checkpoint sha256, first 16 hex"),
        "MODEL": (os.path.basename(net.path)[:60], "model checkpoint or run directory"),
        "SRCFILE": (os.path.basename(source)[:60], "input file"),
        "SRCHDU": (hdu_index, "input HDU"),
        "TILE": (info["tile"], "core tile size (pixels)"),
        "HALO": (info["halo"], "context around each tile (pixels)"),
        "BLEND": (info["blend"], "seam blending ramp (pixels)"),
        "RECEPT": (net.radius, "U-Net receptive radius (pixels)"),
        "THRESH": (-1.0 if options.threshold is None else options.threshold,
                   "fg threshold on 1-p(background); -1 argmax"),
        "TTA": (bool(options.tta), "pooled over the model's symmetry group"),
        "STRETCH": (net.stretch.name, "stretch applied before the network"),
        "DATE": (datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), "UTC of writing"),
    }
    for key, value in provenance.items():
        primary.header[key] = value
    wcs = _wcs_header(header)
    prob_header = wcs.copy()
    for i, name in enumerate(net.classes):
        prob_header[f"CLASS{i}"] = (name, f"class of plane {i + 1}")
    prob_header["BUNIT"] = ("", "softmax belief")
    mask_header = wcs.copy()
    for i, name in enumerate(net.classes):
        mask_header[f"CLASS{i}"] = (name, f"pixel value {i}")
    extensions = [(probs, prob_header, "PROB"), (mask, mask_header, "MASK"),
                  (labels, wcs.copy(), "LABELS"), (coverage, wcs.copy(), "COVERAGE")]

    def write(tmp: str) -> None:
        fits.HDUList([primary]).writeto(tmp, overwrite=True)
        for array, header, name in extensions:
            _stream_image_hdu(tmp, array, header, name)

    _atomic(path, write)


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
    planes = array.reshape(-1, *array.shape[-2:])
    for plane in planes:
        for start in range(0, plane.shape[0], rows):
            stream.write(np.ascontiguousarray(plane[start:start + rows]))
    stream.close()


def _atomic(path: str, write: Callable[[str], None]) -> None:
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_catalogue(path: str, table: Table, fmt: str) -> None:
    if fmt == "fits":
        _atomic(path, lambda tmp: table.write(tmp, format="fits", overwrite=True))
    else:
        _atomic(path, lambda tmp: table.write(tmp, format="ascii.csv", overwrite=True))


def _overlay(path: str, planes: ImagePlanes, labels: np.ndarray, table: Table,
             statistics: dict, stretch: Stretch) -> None:
    """A PNG for a person: the stretched image, object outlines and boxes with their class."""
    from skimage.segmentation import find_boundaries

    from galcnn.plots import _pyplot, _save

    ny, nx = planes.shape
    step = max(1, int(math.ceil(max(ny, nx) / 2048)))
    image = stretch(planes.window(0, ny, 0, nx), statistics).mean(0)[::step, ::step]
    edges = find_boundaries(labels[::step, ::step], mode="inner")
    plt = _pyplot()
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
    _save(fig, path)
    plt.close(fig)


def _output_stem(out_dir: str, source_id: str, hdu_index: int, multi: bool) -> str:
    stem = os.path.join(out_dir, *source_id.split("/"))
    return f"{stem}.hdu{hdu_index}" if multi else stem


def segment_image(planes: ImagePlanes, net: _Model, options: SegmentOptions, stem: str,
                  source: str) -> int:
    """Segment one image HDU into ``stem``.seg.fits and its catalogue; the object count."""
    scratch: list[str] = []
    directory = os.path.dirname(stem) or "."
    os.makedirs(directory, exist_ok=True)
    try:
        if planes.n_bands != net.card["n_bands"]:
            raise FitsReadError(planes.path, f"HDU {planes.index} has {planes.n_bands} band(s); "
                                f"the model needs {net.card['n_bands']}")
        probs, coverage, info = _probabilities(planes, net, options, directory, scratch)
        mask = _mask(probs, options.threshold)
        labels = label_objects(mask, options.min_area, options.watershed)
        mask[labels == 0] = 0
        stats = info["stretch"]
        background = stats.get("median") if isinstance(stats, dict) else None
        table = catalogue(labels, probs, planes, net.classes, planes.header, background)
        table.meta.update({"galcnn": __version__, "model_sha256": net.checksum,
                           "source": source, "hdu": planes.index})
        _write_outputs(f"{stem}.seg.fits", planes.header, probs, mask, labels, coverage, net,
                       options, info, source, planes.index)
        ext = "fits" if options.catalogue_format == "fits" else "csv"
        _write_catalogue(f"{stem}.cat.{ext}", table, options.catalogue_format)
        if options.overlay:
            _overlay(f"{stem}.png", planes, labels, table, stats, net.stretch)
        return len(table)
    finally:
        for path in scratch:
            if os.path.exists(path):
                os.remove(path)


def segment(model_path: str, inputs: list[str], out_dir: str,
            options: SegmentOptions | None = None,
            progress: Callable[[int], Callable[[int], None]] | None = None) -> SegmentResult:
    """Segment every image HDU of ``inputs`` into ``out_dir``; see the module docstring.

    A file or HDU that cannot be used is reported in ``failures`` and in ``segment.csv``;
    it never stops the run. Existing outputs are skipped unless ``options.overwrite``.
    """
    started = time.monotonic()
    options = options or SegmentOptions()
    options.check()
    net = _load(model_path, options)
    try:
        pairs = expand_inputs(inputs, require_any=True)
    except ValueError as exc:
        raise SegmentError(str(exc)) from exc
    os.makedirs(out_dir, exist_ok=True)
    result = SegmentResult(out_dir=out_dir)
    log_path = os.path.join(out_dir, "segment.csv")
    new_log = not os.path.exists(log_path)
    advance = progress(len(pairs)) if progress else None
    with open(log_path, "a", newline="", encoding="utf-8") as log_handle:
        log = csv.DictWriter(log_handle, fieldnames=LOG_COLUMNS)
        if new_log:
            log.writeheader()
        for source in sources_from_files(pairs):
            path = source.paths[0]
            for row in _segment_file(path, source.id, net, options, out_dir, result):
                log.writerow(row)
                log_handle.flush()
            if advance:
                advance(1)
    result.elapsed_s = time.monotonic() - started
    return result


def _segment_file(path: str, source_id: str, net: _Model, options: SegmentOptions,
                  out_dir: str, result: SegmentResult) -> Iterator[dict]:
    if path.endswith((".seg.fits", ".seg.fits.gz")):
        yield {"file": path, "hdu": "", "output": "", "catalogue": "", "n_objects": "",
               "seconds": "", "status": "skipped: a galcnn segment output"}
        return
    try:
        hdul, planes_list = image_hdus(path, options.hdu)
    except FitsReadError as exc:
        result.failures.append((path, exc.problem))
        yield {"file": path, "hdu": "", "output": "", "catalogue": "", "n_objects": "",
               "seconds": "", "status": exc.problem}
        return
    with hdul:
        multi = len(planes_list) > 1
        for planes in planes_list:
            stem = _output_stem(out_dir, source_id, planes.index, multi)
            ext = "fits" if options.catalogue_format == "fits" else "csv"
            row = {"file": path, "hdu": planes.index, "output": f"{stem}.seg.fits",
                   "catalogue": f"{stem}.cat.{ext}", "n_objects": "", "seconds": ""}
            if os.path.exists(f"{stem}.seg.fits") and not options.overwrite:
                result.n_skipped += 1
                yield {**row, "status": "exists (skipped; --overwrite to redo)"}
                continue
            begun = time.monotonic()
            try:
                n_objects = segment_image(planes, net, options, stem, path)
            except FitsReadError as exc:
                result.failures.append((f"{path}[{planes.index}]", exc.problem))
                yield {**row, "output": "", "catalogue": "", "status": exc.problem}
                continue
            except (ValueError, OSError, RuntimeError) as exc:
                problem = f"could not be segmented ({type(exc).__name__}: {exc})"
                result.failures.append((f"{path}[{planes.index}]", problem))
                yield {**row, "output": "", "catalogue": "", "status": problem}
                continue
            result.n_images += 1
            result.n_objects += n_objects
            result.outputs.append(f"{stem}.seg.fits")
            result.megapixels += planes.shape[0] * planes.shape[1] / 1e6
            yield {**row, "n_objects": n_objects,
                   "seconds": f"{time.monotonic() - begun:.2f}", "status": "ok"}
