"""``galcnn segment``: U-Net class-probability maps, masks, object label maps and catalogues.

For each input image HDU, ``<name>.seg.fits`` (see :mod:`galcnn.stages.segment.output`) and a
catalogue ``<name>.cat.csv`` (or ``.cat.fits``) with one row per object; ``segment.csv`` in
the output directory gets one row per input image HDU as it finishes. A file or HDU that
cannot be used is reported there and in the result; it never stops the run.
"""

from __future__ import annotations

import csv
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
from astropy.io import fits

from galcnn.data.atomic import make_directory, make_parent, remove_stale_temporaries
from galcnn.data.fitsio import FitsReadError, ImagePlanes, image_hdus
from galcnn.data.inputs import collect_sources
from galcnn.data.recipe import degenerate_range
from galcnn.data.lock import output_lock
from galcnn.errors import device_failure, is_disk_full, naming_output
from galcnn.runner.provenance import provenance
from galcnn.stages.segment.catalogue import catalogue
from galcnn.stages.segment.deblend import deblend_objects, renumber_in_raster_order
from galcnn.stages.segment.objects import ROWS, class_mask, label_objects
from galcnn.stages.segment.options import SegmentError, SegmentOptions
from galcnn.stages.segment.output import Maps, write_catalogue, write_maps, write_overlay
from galcnn.stages.segment.tiling import Segmenter, probability_maps, scratch_array

__all__ = ["SegmentResult", "Segmented", "segment", "segment_image", "LOG_COLUMNS"]

#: ``segment.csv`` in the output directory: one row per input image HDU, appended as done.
LOG_COLUMNS = ("file", "hdu", "output", "catalogue", "n_objects", "seconds", "status")


@dataclass
class SegmentResult:
    out_dir: str
    n_images: int = 0
    n_objects: int = 0
    n_skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """Outputs written but meaningless (constant or all-bad images: no objects)."""
    outputs: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    megapixels: float = 0.0

    @property
    def n_failed(self) -> int:
        return len(self.failures)


class Segmented(NamedTuple):
    n_objects: int
    warning: str | None = None
    """Why the result means nothing although it was written (a constant image: no objects)."""


def segment_image(planes: ImagePlanes, segmenter: Segmenter, options: SegmentOptions,
                  stem: str, source: str) -> Segmented:
    """Segment one image HDU into ``stem``.seg.fits and its catalogue; the object count, and
    a warning for an image with nothing to find (constant or all bad: no objects).

    Raises :class:`galcnn.data.fitsio.FitsReadError` for an image the model cannot take."""
    scratch: list[str] = []
    directory = os.path.dirname(stem) or "."
    make_directory(directory)
    n_bands = segmenter.card.preprocess.n_bands
    try:
        if planes.n_bands != n_bands:
            raise FitsReadError(planes.path, f"HDU {planes.index} has {planes.n_bands} band(s); "
                                f"the model needs {n_bands}")
        probs, coverage, flux, info = probability_maps(planes, segmenter, options, directory,
                                                       scratch)
        shape = planes.shape
        mask = class_mask(probs, options.threshold,
                          scratch_array(shape, np.int16, directory, scratch))
        warning = degenerate_range(*info["range"])
        labels = scratch_array(shape, np.int32, directory, scratch)  # zeros: no object
        if not warning:  # a constant or all-bad image has nothing, whatever the network says
            label_objects(mask, labels, min_area=options.min_area)
            if options.deblend:
                n_labels = deblend_objects(
                    labels, flux, min_area=options.min_area,
                    contrast=options.deblend_contrast,
                    max_area=4 * int(np.prod(segmenter.card.preprocess.size)))
                renumber_in_raster_order(labels, n_labels)
        for start in range(0, shape[0], ROWS):  # pixels of dropped objects are background
            block = slice(start, start + ROWS)
            mask[block] = np.where(labels[block] == 0, 0, mask[block])
        statistics = info["stretch"]
        table = catalogue(labels, probs, flux, segmenter.classes, planes.header)
        # the maps last: a .seg.fits in place means every product of this HDU is complete
        cards = provenance(segmenter, source, planes.index)
        write_catalogue(catalogue_path(stem, options), table, options.catalogue_format,
                        cards + [("RADESYS", "ICRS", "frame of the ra and dec columns")])
        if options.overlay:
            write_overlay(f"{stem}.png", planes, labels, table, segmenter, statistics)
        write_maps(f"{stem}.seg.fits", planes.header, Maps(probs, mask, labels, coverage),
                   cards, segmenter, options, info)
        return Segmented(len(table), warning)
    finally:
        for path in scratch:
            if os.path.exists(path):
                os.remove(path)


def catalogue_path(stem: str, options: SegmentOptions) -> str:
    return f"{stem}.cat.{'fits' if options.catalogue_format == 'fits' else 'csv'}"


def is_complete(stem: str, options: SegmentOptions) -> bool:
    """Whether every product of an output is in place (the maps are written last)."""
    products = [f"{stem}.seg.fits", catalogue_path(stem, options)]
    return all(os.path.exists(p) for p in products + ([f"{stem}.png"] * options.overlay))


def segment(model_path: str, inputs: list[str], out_dir: str,
            options: SegmentOptions | None = None, *,
            progress: Callable[[int], Callable[[int], None]] | None = None,
            **changes) -> SegmentResult:
    """Segment every image HDU of ``inputs`` into ``out_dir``; see the module docstring.
    ``changes`` are fields of :class:`SegmentOptions` (``segment(run, fields, out,
    overlay=True)``).

    Existing outputs of the same model are skipped unless ``options.overwrite``, so a rerun
    resumes; outputs of another model in ``out_dir`` are refused without ``overwrite``.
    """
    started = time.monotonic()
    options = replace(options or SegmentOptions(), **changes)
    options.check()
    segmenter = Segmenter.load(model_path, device=options.device, amp=options.amp,
                               pooled=options.tta)
    segmenter.halo(options.halo)  # a halo too small is fatal, not a per-file problem
    try:
        sources, _, _ = collect_sources(inputs, require_any=True)
    except ValueError as exc:
        raise SegmentError(str(exc)) from exc
    _refuse_shared_outputs(sources, out_dir)
    make_parent(out_dir)
    kept = "complete outputs are kept; free space, then run again to go on"
    with output_lock(out_dir), naming_output(out_dir, kept):
        if not options.overwrite:
            _refuse_other_models(out_dir, segmenter)
        created = not os.path.exists(out_dir)
        make_directory(out_dir)
        remove_stale_temporaries(out_dir)
        try:
            result = _segment_all(sources, segmenter, options, out_dir, progress)
        except BaseException:
            if created and _holds_no_output(out_dir):
                shutil.rmtree(out_dir, ignore_errors=True)
            raise
    result.elapsed_s = time.monotonic() - started
    return result


def _segment_all(sources, segmenter: Segmenter, options: SegmentOptions, out_dir: str,
                 progress) -> SegmentResult:
    result = SegmentResult(out_dir=out_dir)
    log_path = os.path.join(out_dir, "segment.csv")
    logged = _logged_outputs(log_path)
    advance = progress(len(sources)) if progress else None
    with open(log_path, "a", newline="", encoding="utf-8") as log_handle:
        log = csv.DictWriter(log_handle, fieldnames=LOG_COLUMNS)
        if logged is None:
            log.writeheader()
        for source in sources:
            for row in _segment_file(source.paths[0], source.relative, segmenter, options,
                                     out_dir, result):
                if row["status"].startswith("exists") and row["output"] in (logged or ()):
                    continue  # its row is in the log already
                log.writerow(row)
                log_handle.flush()
            if advance:
                advance(1)
    return result


def _refuse_shared_outputs(sources, out_dir: str) -> None:
    """Two inputs that would write the same output (``dirA/x.fits`` and ``dirB/x.fits``, or
    ``y.fits`` and ``y.fits.fz``) are refused before any work: one would silently be skipped
    as existing, or replace the other."""
    first_of: dict[str, str] = {}
    for source in sources:
        path = source.paths[0]
        earlier = first_of.setdefault(source.relative, path)
        if earlier != path:
            stem = _output_stem(out_dir, source.relative, 0, multi=False)
            raise SegmentError(
                f"{earlier} and {path} would both be written to {stem}.seg.fits; segment "
                "them into separate output directories, or rename one")


def _holds_no_output(out_dir: str) -> bool:
    """Whether a directory holds nothing but a log without rows (a run that failed at once)."""
    names = os.listdir(out_dir)
    if not set(names) <= {"segment.csv"}:
        return False
    return not names or len(_logged_outputs(os.path.join(out_dir, "segment.csv")) or ()) == 0


def _refuse_other_models(out_dir: str, segmenter: Segmenter) -> None:
    """Outputs of another model must not be mistaken for this one's: refuse them."""
    for directory, _, files in os.walk(out_dir):
        for name in sorted(files):
            if not name.endswith(".seg.fits"):
                continue
            path = os.path.join(directory, name)
            try:
                written_by = fits.getval(path, "MODELSHA")
            except (OSError, KeyError):
                written_by = "?"
            if str(written_by)[:16] != segmenter.checksum[:16]:  # 16 hex before galcnn 0.3
                raise SegmentError(f"{path} was written by another model (MODELSHA "
                                   f"{written_by}, this one {segmenter.checksum[:16]}); use "
                                   "--overwrite to replace its outputs, or another directory")


def _logged_outputs(log_path: str) -> set[str] | None:
    """Outputs ``segment.csv`` already lists (None: no log yet, or one without its header)."""
    if not os.path.exists(log_path) or os.path.getsize(log_path) == 0:
        return None
    with open(log_path, newline="", encoding="utf-8") as handle:
        return {row["output"] for row in csv.DictReader(handle) if row.get("output")}


def _output_stem(out_dir: str, source_id: str, hdu_index: int, multi: bool) -> str:
    stem = os.path.join(out_dir, *source_id.split("/"))
    return f"{stem}.hdu{hdu_index}" if multi else stem


def _segment_file(path: str, source_id: str, segmenter: Segmenter, options: SegmentOptions,
                  out_dir: str, result: SegmentResult) -> Iterator[dict]:
    empty = {"file": path, "hdu": "", "output": "", "catalogue": "", "n_objects": "",
             "seconds": ""}
    if path.endswith((".seg.fits", ".seg.fits.gz")):
        yield {**empty, "status": "skipped: a galcnn segment output"}
        return
    try:
        hdul, planes_list = image_hdus(path, options.hdu)
    except FitsReadError as exc:
        result.failures.append((path, exc.problem))
        yield {**empty, "status": exc.problem}
        return
    with hdul:
        multi = len(planes_list) > 1
        for planes in planes_list:
            stem = _output_stem(out_dir, source_id, planes.index, multi)
            row = {**empty, "hdu": planes.index, "output": f"{stem}.seg.fits",
                   "catalogue": catalogue_path(stem, options)}
            if is_complete(stem, options) and not options.overwrite:
                result.n_skipped += 1
                yield {**row, "status": "exists (skipped; --overwrite to redo)"}
                continue
            begun = time.monotonic()
            try:
                n_objects, warning = segment_image(planes, segmenter, options, stem, path)
            except FitsReadError as exc:
                result.failures.append((f"{path}[{planes.index}]", exc.problem))
                yield {**row, "output": "", "catalogue": "", "status": exc.problem}
                continue
            except (ValueError, OSError, RuntimeError) as exc:
                if device_failure(exc) or is_disk_full(exc):
                    raise  # the whole run's problem (every next image would meet it too)
                problem = f"could not be segmented ({type(exc).__name__}: {exc})"
                result.failures.append((f"{path}[{planes.index}]", problem))
                yield {**row, "output": "", "catalogue": "", "status": problem}
                continue
            result.n_images += 1
            result.n_objects += n_objects
            result.outputs.append(f"{stem}.seg.fits")
            result.megapixels += planes.shape[0] * planes.shape[1] / 1e6
            if warning:
                result.warnings.append((f"{path}[{planes.index}]", warning))
            yield {**row, "n_objects": n_objects, "seconds": f"{time.monotonic() - begun:.2f}",
                   "status": f"warning: {warning}" if warning else "ok"}
