"""Probability maps of images of any size, tile by tile, independent of the tiling.

Each tile's core is surrounded by a halo of at least the network's receptive radius, and tile
corners sit on multiples of the U-Net's down-sampling factor, so every output pixel of a core
sees exactly the context it would see in one pass over the whole image. A halo smaller than
the receptive radius is refused: the maps would depend on the tiling. Cores are blended into
their neighbours with linear ramps only as far into the halo as the neighbour's predictions
still had their full context (halo minus receptive radius; a pixel or so by default), so the
blend never mixes in a prediction made without it. The recipe's statistics are measured once
per image (on the whole image, or a mosaic of windows of a large one) and applied to every
tile. Probabilities are
accumulated in memory-mapped scratch files for large images, so memory stays bounded.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np

from galcnn.data.atomic import scratch_prefix
from galcnn.data.fitsio import ImagePlanes
from galcnn.errors import option_error
from galcnn.runner.model import LoadedModel, open_model
from galcnn.stages.segment.options import SegmentError, SegmentOptions

__all__ = ["Segmenter", "probability_maps", "tile_grid"]

IN_MEMORY_BYTES = 256 * 2**20
STATS_PIXELS = 16 * 2**20


@dataclass
class Segmenter(LoadedModel):
    """A U-Net ready to map images, with what tiling needs to know about it."""

    @classmethod
    def load(cls, path: str, *, device: str = "auto", amp: bool = True,
             pooled: bool = True) -> "Segmenter":
        """The U-Net of a checkpoint or run directory; ``pooled=False``: the bare network
        instead of the model pooled over its symmetry group."""
        loaded = open_model(path, "segment", "segment", device=device, amp=amp,
                            pooled=pooled, error=SegmentError)
        return cls(**{name.name: getattr(loaded, name.name) for name in fields(loaded)})

    @property
    def classes(self) -> list[str]:
        return list(self.card.classes)

    @property
    def pooled(self) -> bool:
        return len(self.predictor.model.elements) > 1

    @property
    def multiple(self) -> int:
        return self.predictor.model.net.multiple

    @property
    def radius(self) -> int:
        return self.predictor.model.net.receptive_radius()

    def halo(self, requested: int | None) -> int:
        """The context read around each tile: the receptive radius (or ``requested``, which
        may not be smaller), on the down-sampling grid. Raises SegmentError."""
        if requested is not None and requested < self.radius:
            raise option_error(SegmentError, "halo", f"{{option}} {requested} is smaller than "
                               f"the U-Net's receptive radius ({self.radius} px): the maps "
                               f"would depend on the tile size; give at least {self.radius} "
                               "or leave {option} out")
        return _round_up(self.radius if requested is None else requested, self.multiple)


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


def statistics_sample(planes: ImagePlanes) -> np.ndarray:
    """The whole image when small, else a mosaic of windows spread over it."""
    ny, nx = planes.shape
    if ny * nx <= STATS_PIXELS:
        return planes.window(0, ny, 0, nx)
    side, n = 1024, 4
    windows = []
    for i in range(n):
        for j in range(n):
            y0 = int((ny - side) * i / (n - 1)) if ny > side else 0
            x0 = int((nx - side) * j / (n - 1)) if nx > side else 0
            windows.append(planes.window(y0, y0 + side, x0, x0 + side))
    height = min(w.shape[1] for w in windows)
    return np.concatenate([w[:, :height] for w in windows], axis=2)


def scratch_array(shape: tuple[int, ...], dtype, directory: str, stack: list) -> np.ndarray:
    """A zeroed array in memory, or memory-mapped in ``directory`` when it is large (its path
    is appended to ``stack`` for the caller to remove)."""
    if int(np.prod(shape)) * np.dtype(dtype).itemsize <= IN_MEMORY_BYTES:
        return np.zeros(shape, dtype=dtype)
    handle = tempfile.NamedTemporaryFile(dir=directory, prefix=scratch_prefix(), delete=False)
    handle.close()
    stack.append(handle.name)
    return np.memmap(handle.name, dtype=dtype, mode="w+", shape=shape)


def probability_maps(planes: ImagePlanes, segmenter: Segmenter, options: SegmentOptions,
                     scratch_dir: str, scratch: list
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Class probabilities ``(classes, y, x)``, coverage (tiles per pixel), the flux plane
    (background-subtracted sum of the bands, for the catalogue, so that the image is read
    only once), and how they were made. Large maps live in memory-mapped scratch files."""
    ny, nx = planes.shape
    m = segmenter.multiple
    tile = _round_up(options.tile, m)
    per_pass = options.tiles_per_pass(segmenter.predictor.device.type)
    halo = segmenter.halo(options.halo)
    blend = min(halo - segmenter.radius, tile // 2)
    recipe = segmenter.card.preprocess
    context = recipe.window_context(statistics_sample(planes))
    probs = scratch_array((len(segmenter.classes), ny, nx), np.float32, scratch_dir, scratch)
    weights = scratch_array((ny, nx), np.float32, scratch_dir, scratch)
    coverage = scratch_array((ny, nx), np.int16, scratch_dir, scratch)
    flux = scratch_array((ny, nx), np.float32, scratch_dir, scratch)
    median = context.statistics.get("median")
    background = (np.asarray(median, dtype=np.float32)[:, None, None] if median is not None
                  else np.zeros((planes.n_bands, 1, 1), np.float32))
    size = tile + 2 * halo
    ramp = _ramp(size, tile, blend)
    window_weight = ramp[:, None] * ramp[None, :]

    def run(batch: list[tuple[int, int, np.ndarray]]) -> None:
        out = segmenter.predictor.pixel_probabilities(np.stack([b[2] for b in batch]))
        for (y0, x0, _), p in zip(batch, out):
            wy0, wx0 = y0 - halo, x0 - halo
            ys, ye = max(wy0, 0), min(wy0 + size, ny)
            xs, xe = max(wx0, 0), min(wx0 + size, nx)
            w = window_weight[ys - wy0:ye - wy0, xs - wx0:xe - wx0]
            probs[:, ys:ye, xs:xe] += p[:, ys - wy0:ye - wy0, xs - wx0:xe - wx0] * w
            weights[ys:ye, xs:xe] += w
            coverage[ys:ye, xs:xe] += (w > 0).astype(np.int16)

    batch: list[tuple[int, int, np.ndarray]] = []
    low, high = np.inf, -np.inf  # the image's value range, to flag a constant image
    for y0, x0 in tile_grid((ny, nx), tile):
        window = _padded_window(planes, y0 - halo, y0 + tile + halo, x0 - halo,
                                x0 + tile + halo)
        core = window[:, halo:halo + min(tile, ny - y0), halo:halo + min(tile, nx - x0)]
        if np.isfinite(core).any():
            low, high = min(low, float(np.nanmin(core))), max(high, float(np.nanmax(core)))
        flux[y0:y0 + core.shape[1], x0:x0 + core.shape[2]] = \
            np.nan_to_num((core - background).sum(axis=0))
        batch.append((y0, x0, recipe.apply_window(window, context)))
        if len(batch) == per_pass:
            run(batch)
            batch = []
    if batch:
        run(batch)
    for start in range(0, ny, 512):
        rows = slice(start, min(start + 512, ny))
        probs[:, rows] /= np.maximum(weights[rows], 1e-12)
    info = {"tile": tile, "halo": halo, "blend": blend, "stretch": context.statistics,
            "range": (low, high)}
    return probs, coverage, flux, info
