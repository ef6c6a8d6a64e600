"""``galcnn prepare``: FITS cutouts in, a memory-mappable training set out.

Each input object is read (:mod:`galcnn.fitsio`), stretched (:mod:`galcnn.normalise`), its bad
pixels filled, brought to one size (:mod:`galcnn.geometry`) and, for training samples only,
written again under chosen symmetry operations (:mod:`galcnn.augment`). Everything that
defines the transform is recorded in ``metadata.json`` so that ``predict`` and ``segment``
apply exactly the same. The output appears only when complete.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import numpy as np

from galcnn import __version__
from galcnn.augment import GROUPS, D4, Rotation, choose_transforms
from galcnn.dataset import FORMAT_NAME, FORMAT_VERSION, MASKS_DIR, ShardWriter, write_manifest
from galcnn.fitsio import FitsReadError, centre_radec, read_image
from galcnn.geometry import FIT_MODES, fit_mask_to_size, fit_to_size, rotate_to_size
from galcnn.inputs import Source, expand_inputs, group_bands, sources_from_files
from galcnn.labels import (choose_classes, find_label_file, labels_from_directories,
                           match_labels, read_label_table)
from galcnn.masks import derive_mask, parse_mask_source, read_mask_hdu
from galcnn.normalise import FILL_METHODS, Stretch, fill_bad

__all__ = ["PrepareOptions", "PrepareResult", "PrepareError", "prepare", "prepare_image",
           "default_workers", "stream_samples"]

logger = logging.getLogger("galcnn")

SPLITS = ("train", "val", "test", "unlabelled")
N_PROBE = 16


class PrepareError(ValueError):
    """Nothing could be prepared (bad options, no inputs, no readable file)."""


@dataclass(frozen=True)
class PrepareOptions:
    """How every image is turned into a sample; recorded in the metadata."""

    size: tuple[int, int] | None = None
    fit: str = "crop"
    stretch: Stretch = field(default_factory=Stretch)
    fill: str = "median"
    hdu: int | str | None = None
    augment: str = "none"
    copies: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.0
    seed: int = 0
    max_bad_fraction: float = 0.5
    dtype: str = "float32"
    masks: str = "none"
    """``none``, ``auto`` (derived, :func:`galcnn.masks.derive_mask`) or ``hdu:NAME``."""
    mask_nsigma: float = 2.0

    def __post_init__(self):
        if self.fit not in FIT_MODES:
            raise ValueError(f"unknown fit {self.fit!r}; choose one of {', '.join(FIT_MODES)}")
        if self.fill not in FILL_METHODS:
            raise ValueError(f"unknown fill {self.fill!r}; choose one of {', '.join(FILL_METHODS)}")
        if self.augment not in GROUPS:
            raise ValueError(f"unknown augmentation {self.augment!r}; choose one of {', '.join(GROUPS)}")
        if self.copies < 0:
            raise ValueError(f"--copies must be >= 0, got {self.copies}")
        if self.copies and self.augment == "none":
            raise ValueError("--copies needs an augmentation group (--augment rot90, dihedral "
                             "or rotate)")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1
                and self.val_fraction + self.test_fraction < 1):
            raise ValueError("validation and test fractions must be in [0, 1) and sum to < 1")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 4):
            raise ValueError(f"size must be two integers >= 4, got {self.size}")
        if not 0 < self.max_bad_fraction <= 1:
            raise ValueError("max bad-pixel fraction must be in (0, 1]")
        if self.dtype not in ("float32", "float16"):
            raise ValueError(f"dtype must be float32 or float16, got {self.dtype!r}")
        object.__setattr__(self, "masks", parse_mask_source(self.masks))
        if self.masks != "none" and self.copies and self.augment == "rotate":
            raise ValueError("--masks cannot be combined with --augment rotate --copies "
                             "(interpolated masks); use rot90 or dihedral copies")
        if self.mask_nsigma <= 0:
            raise ValueError(f"--mask-nsigma must be > 0, got {self.mask_nsigma}")

    def to_dict(self) -> dict:
        values = asdict(self)
        values["stretch"] = self.stretch.to_dict()
        values["size"] = list(self.size) if self.size else None
        values["hdu"] = "auto" if self.hdu is None else self.hdu
        return values

    @classmethod
    def from_dict(cls, values: dict, **changes) -> "PrepareOptions":
        """Inverse of :meth:`to_dict` (as stored in metadata and model cards), with changes."""
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        known["stretch"] = Stretch.from_dict(known.get("stretch") or {})
        known["size"] = tuple(known["size"]) if known.get("size") else None
        known["hdu"] = None if known.get("hdu") in (None, "auto") else known["hdu"]
        known.update(changes)
        return cls(**known)


@dataclass
class PrepareResult:
    """What a run did; ``failures`` holds ``(file, problem)`` for every input not used."""

    out_dir: str
    n_sources: int
    n_samples: int
    classes: list[str]
    class_counts: dict[str, dict[str, int]]
    failures: list[tuple[str, str]]
    n_unlabelled: int
    n_missing: int
    dropped_classes: dict[str, int]
    label_source: str
    size: tuple[int, int]
    n_bands: int
    n_bad_pixels: int
    elapsed_s: float
    masks: str = "none"

    @property
    def n_failed(self) -> int:
        return len(self.failures)


def default_workers() -> int:
    """The CPUs this process may use (respects affinity masks and Slurm's cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------- one image

def _check_geometry(shape: tuple[int, int], size: tuple[int, int], fit: str,
                    native: bool) -> str | None:
    height, width = shape
    need_y, need_x = ((size[0] + 1) // 2, (size[1] + 1) // 2) if fit == "crop" else (4, 4)
    if height < need_y or width < need_x:
        hint = " (or use --fit resize)" if fit == "crop" else ""
        return (f"too small: {width}x{height} pixels, at least {need_x}x{need_y} needed for "
                f"size {size[1]}x{size[0]}{hint}")
    if native and (height, width) != tuple(size):
        return (f"is {width}x{height} pixels, the others are {size[1]}x{size[0]}; choose one "
                "size for all with --size")
    return None


def prepare_image(data: np.ndarray, size: tuple[int, int], options: PrepareOptions,
                  transforms: list | None = None) -> list[tuple[np.ndarray, str]]:
    """Stretch, fill and fit one ``(bands, y, x)`` image; one sample per transform.

    The untransformed sample always comes first. This is the exact recipe that
    ``predict`` and ``segment`` repeat from the recorded options.
    """
    stretched = fill_bad(options.stretch(data), options.fill)
    pad = np.median(stretched.reshape(len(stretched), -1), axis=1)
    base = fit_to_size(stretched, size, fit=options.fit, pad_values=pad)
    samples = [(base, "identity")]
    for transform in transforms or []:
        if isinstance(transform, D4):
            samples.append((transform(base), transform.name))
        elif isinstance(transform, Rotation):
            rotated, zoom = rotate_to_size(stretched, size, transform.angle, fit=options.fit)
            name = transform.name + (f",zoom:{zoom:.3f}" if zoom > 1.0005 else "")
            samples.append((rotated, name))
    return [(s.astype(options.dtype, copy=False), name) for s, name in samples]


@dataclass
class _Task:
    index: int
    source: Source
    split: str


@dataclass
class _Outcome:
    index: int
    samples: list[tuple[np.ndarray, str]]
    masks: list[np.ndarray] = field(default_factory=list)
    hdu: int = -1
    ra: float = float("nan")
    dec: float = float("nan")
    n_bad: int = 0
    band_names: list[str] = field(default_factory=list)
    problem: str | None = None


_WORKER_STATE: dict = {}


def _init_worker(options: PrepareOptions, size: tuple[int, int], n_bands: int,
                 native: bool) -> None:
    _WORKER_STATE.update(options=options, size=size, n_bands=n_bands, native=native)


def _process(task: _Task) -> _Outcome:
    state = _WORKER_STATE
    options: PrepareOptions = state["options"]
    try:
        image = read_image(list(task.source.paths), hdu=options.hdu)
    except FitsReadError as exc:
        return _Outcome(task.index, [], problem=exc.problem)
    outcome = _Outcome(task.index, [], hdu=image.hdu, n_bad=image.n_bad,
                       band_names=image.band_names)
    try:
        if image.n_bands != state["n_bands"]:
            outcome.problem = (f"has {image.n_bands} band(s), expected {state['n_bands']} "
                               "like the others")
            return outcome
        bad_fraction = image.n_bad / image.data.size
        if bad_fraction >= 1.0:
            outcome.problem = "every pixel is NaN, inf or BLANK"
            return outcome
        if bad_fraction > options.max_bad_fraction:
            outcome.problem = (f"{100 * bad_fraction:.0f}% of pixels are NaN, inf or BLANK "
                               f"(limit {100 * options.max_bad_fraction:.0f}%, --max-bad-fraction)")
            return outcome
        problem = _check_geometry(image.shape, state["size"], options.fit, state["native"])
        if problem:
            outcome.problem = problem
            return outcome
        transforms = []
        if task.split == "train" and options.copies:
            rng = np.random.default_rng([options.seed, task.index])
            transforms = choose_transforms(options.augment, options.copies, rng)
        if options.masks != "none":
            outcome.masks = _cutout_masks(task.source, image.data, state["size"], options,
                                          transforms)
        outcome.samples = prepare_image(image.data, state["size"], options, transforms)
        outcome.ra, outcome.dec = centre_radec(image.header, image.shape)
    except MaskError as exc:
        outcome.problem, outcome.samples = str(exc), []
    except Exception as exc:  # one odd file must never stop a batch
        outcome.problem = f"could not be prepared ({type(exc).__name__}: {exc})"
        outcome.samples = []
    return outcome


class MaskError(ValueError):
    """A cutout's mask is missing or unusable (the cutout is then reported, not used)."""


def _cutout_masks(source: Source, data: np.ndarray, size: tuple[int, int],
                  options: PrepareOptions, transforms: list) -> list[np.ndarray]:
    """The cutout's 0/1/2 mask with the same geometry and transforms as its samples."""
    if options.masks == "auto":
        raw = derive_mask(data, nsigma=options.mask_nsigma)
    else:
        try:
            raw = read_mask_hdu(source.paths[0], options.masks[4:], data.shape[1:])
        except ValueError as exc:
            raise MaskError(str(exc)) from None
    base = fit_mask_to_size(raw, size, fit=options.fit)
    return [base] + [t(base[None])[0].copy() for t in transforms]


# --------------------------------------------------------------------------- the run

def _assign_splits(sources: list[Source], labels: dict[Source, str] | None,
                   options: PrepareOptions) -> dict[Source, str]:
    """Stratified, seeded split: each class split in the same proportions."""
    if labels is None:
        return {s: "unlabelled" for s in sources}
    rng = np.random.default_rng(options.seed)
    splits = {}
    by_class: dict[str, list[Source]] = {}
    for source in sources:
        if source in labels:
            by_class.setdefault(labels[source], []).append(source)
    for name in sorted(by_class):
        members = by_class[name]
        order = rng.permutation(len(members))
        n_val = int(round(options.val_fraction * len(members)))
        n_test = int(round(options.test_fraction * len(members)))
        if options.val_fraction > 0 and n_val == 0 and len(members) >= 2:
            n_val = 1
        for rank, position in enumerate(order):
            split = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
            splits[members[position]] = split
    return splits


def _probe_shape(sources: list[Source], options: PrepareOptions
                 ) -> tuple[int, tuple[int, int], list[str]]:
    """Band count and native size from the first readable sources (most common wins)."""
    shapes: Counter = Counter()
    band_names: list[str] = []
    for source in sources[: N_PROBE * 4]:
        try:
            image = read_image(list(source.paths), hdu=options.hdu)
        except FitsReadError:
            continue
        shapes[(image.n_bands, *image.shape)] += 1
        band_names = band_names or image.band_names
        if sum(shapes.values()) >= N_PROBE:
            break
    if not shapes:
        return 0, (0, 0), []
    n_bands, height, width = shapes.most_common(1)[0][0]
    return n_bands, (height, width), band_names


def _resolve_labels(sources, inputs, labels_path, id_column, label_column, where, no_labels
                    ) -> tuple[dict | None, str, list[Source], list[str], dict]:
    """Labels per source, where they came from, unlabelled sources, ids with no file."""
    if no_labels:
        return None, "none", [], [], {}
    labels_path = labels_path or find_label_file(list(inputs))
    if labels_path:
        table = read_label_table(labels_path, id_column=id_column, label_column=label_column,
                                 where=where)
        labels, unlabelled, missing = match_labels(sources, table)
        info = {"table": os.path.abspath(labels_path), "id_column": table.id_column,
                "label_column": table.label_column, "where": dict(where or {}),
                "rows": table.n_rows, "rows_filtered_out": table.n_filtered,
                "rows_without_label": table.n_empty, "conflicting_ids": table.conflicts}
        if not labels:
            raise PrepareError(f"{labels_path}: no label matched any input file (ids like "
                               f"{next(iter(table.labels), '?')!r} vs files like "
                               f"{sources[0].paths[0]!r}); check --id-column")
        return labels, f"table:{labels_path}", unlabelled, missing, info
    labels = labels_from_directories(sources)
    if labels is not None:
        return labels, "directories", [], [], {}
    return None, "none", [], [], {}


def _pool(workers: int, options: PrepareOptions, size, n_bands, native):
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return context.Pool(workers, initializer=_init_worker,
                        initargs=(options, size, n_bands, native))


def _run_tasks(tasks: list[_Task], workers: int, options, size, n_bands, native,
               progress: Callable[[int], None] | None):
    if workers <= 1 or len(tasks) < 2:
        _init_worker(options, size, n_bands, native)
        for task in tasks:
            yield _process(task)
            if progress:
                progress(1)
        return
    chunksize = max(1, min(16, len(tasks) // (workers * 8)))
    with _pool(workers, options, size, n_bands, native) as pool:
        for outcome in pool.imap(_process, tasks, chunksize=chunksize):
            yield outcome
            if progress:
                progress(1)


def stream_samples(sources: list[Source], options: PrepareOptions, size: tuple[int, int],
                   n_bands: int, workers: int, chunk: int = 256):
    """Read and prepare ``sources`` in order with at most two chunks in flight.

    What ``predict`` and ``segment`` read through: the same recipe as ``prepare`` (so a model
    sees what it was trained on), memory bounded however many inputs there are, and one bad
    file yields an outcome with ``problem`` set instead of stopping the stream. Outcomes carry
    ``index`` (position in ``sources``), ``samples[0][0]`` (the image), ``hdu``, ``ra``, ``dec``.
    """
    tasks = [_Task(i, s, "unlabelled") for i, s in enumerate(sources)]
    chunks = [tasks[i:i + chunk] for i in range(0, len(tasks), chunk)]
    if workers <= 1 or len(tasks) < 2:
        _init_worker(options, size, n_bands, False)
        for task in tasks:
            yield _process(task)
        return
    with _pool(workers, options, size, n_bands, False) as pool:
        pending = pool.imap(_process, chunks[0], chunksize=4) if chunks else None
        for following in chunks[1:] + [None]:
            current = pending
            pending = pool.imap(_process, following, chunksize=4) if following else None
            yield from current


def _write_lines(path: str, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{line}\n" for line in lines)


def _write_failures(path: str, failures: list[tuple[str, str]]) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "problem"])
        writer.writerows(failures)


def _move_into_place(tmp_dir: str, out_dir: str, overwrite: bool) -> None:
    if os.path.exists(out_dir):
        if not overwrite:
            raise PrepareError(f"{out_dir} already exists; use --overwrite to replace it")
        old = f"{out_dir}.old-{os.getpid()}"
        os.replace(out_dir, old)
        os.replace(tmp_dir, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp_dir, out_dir)


def prepare(inputs: list[str], out_dir: str, *, labels: str | None = None,
            id_column: str | None = None, label_column: str | None = None,
            where: dict[str, str] | None = None, classes: list[str] | None = None,
            no_labels: bool = False, band_pattern: str | None = None,
            bands: list[str] | None = None, options: PrepareOptions | None = None,
            workers: int | None = None, overwrite: bool = False,
            progress: Callable[[int], Callable[[int], None]] | None = None,
            command: str | None = None) -> PrepareResult:
    """Prepare FITS cutouts into ``out_dir``.

    Parameters
    ----------
    inputs
        Files, directories (searched recursively), globs, or ``@list`` files.
    out_dir
        Output directory; written under a temporary name and renamed when complete.
    labels, id_column, label_column, where
        A label table and how to read it; without one, a ``labels.csv`` inside a single
        input directory, then class-named subdirectories, are used.
    classes
        Keep only these classes, in this order.
    band_pattern, bands
        One file per band: a file-name pattern with ``{id}`` and ``{band}``, and band order.
    progress
        ``progress(total)`` returning ``advance(n)``, or None.

    Raises
    ------
    PrepareError
        When nothing can be prepared; per-file problems are returned, not raised.
    """
    started = time.monotonic()
    options = options or PrepareOptions()
    workers = workers or default_workers()
    if os.path.exists(out_dir) and not overwrite:
        raise PrepareError(f"{out_dir} already exists; use --overwrite to replace it")
    try:
        pairs = expand_inputs(inputs, require_any=True)
    except ValueError as exc:
        raise PrepareError(str(exc)) from exc
    failures: list[tuple[str, str]] = []
    if band_pattern:
        try:
            sources, band_order, problems = group_bands(pairs, band_pattern, bands)
        except ValueError as exc:
            raise PrepareError(str(exc)) from exc
        failures.extend(problems)
    else:
        sources, band_order = sources_from_files(pairs), []
    try:
        label_map, label_source, unlabelled, missing, label_info = _resolve_labels(
            sources, inputs, labels, id_column, label_column, where, no_labels)
        if label_map is not None:
            class_list, label_map, dropped = choose_classes(label_map, classes)
        else:
            if classes:
                raise PrepareError("--classes needs labels (a table or class-named folders)")
            class_list, dropped = [], {}
    except ValueError as exc:
        raise PrepareError(str(exc)) from exc
    used_sources = [s for s in sources if label_map is None or s in label_map]
    if not used_sources:
        raise PrepareError("no labelled input left to prepare")
    splits = _assign_splits(used_sources, label_map, options)

    n_bands, native_size, probe_bands = _probe_shape(used_sources, options)
    if n_bands == 0:
        first = used_sources[0]
        try:
            read_image(list(first.paths), hdu=options.hdu)
        except FitsReadError as exc:
            raise PrepareError(f"none of the first inputs could be read, e.g. {exc}") from exc
    size = tuple(options.size) if options.size else native_size
    native = options.size is None

    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp_dir = os.path.join(parent, f".{os.path.basename(os.path.abspath(out_dir))}.tmp-{os.getpid()}")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    os.makedirs(tmp_dir)
    try:
        writer = ShardWriter(tmp_dir, (n_bands, *size), options.dtype)
        mask_writer = (ShardWriter(tmp_dir, tuple(size), "uint8", subdir=MASKS_DIR)
                       if options.masks != "none" else None)
        tasks = [_Task(i, s, splits[s]) for i, s in enumerate(used_sources)]
        class_index = {name: i for i, name in enumerate(class_list)}
        rows, counts = [], {split: Counter() for split in SPLITS}
        n_bad_pixels = 0
        advance = progress(len(tasks)) if progress else None
        band_names = band_order or probe_bands
        for outcome in _run_tasks(tasks, workers, options, size, n_bands, native, advance):
            source = used_sources[outcome.index]
            if outcome.problem:
                failures.append((source.path_text, outcome.problem))
                continue
            label = label_map[source] if label_map is not None else ""
            n_bad_pixels += outcome.n_bad
            counts[splits[source]][label or "unlabelled"] += len(outcome.samples)
            for position, (sample, transform) in enumerate(outcome.samples):
                shard, row = writer.add(sample)
                mask_shard, mask_row = (mask_writer.add(outcome.masks[position])
                                        if mask_writer else ("", ""))
                rows.append({"mask_shard": mask_shard, "mask_row": mask_row,"index": len(rows), "id": source.id, "file": source.path_text,
                             "hdu": outcome.hdu, "label": label,
                             "label_index": class_index.get(label, -1),
                             "split": splits[source], "transform": transform,
                             "shard": shard, "row": row, "ra": f"{outcome.ra:.7f}",
                             "dec": f"{outcome.dec:.7f}", "n_bad": outcome.n_bad})
        shards = writer.close()
        mask_shards = mask_writer.close() if mask_writer else []
        if not rows:
            raise PrepareError(f"no input could be prepared ({len(failures)} failed, e.g. "
                               f"{failures[0][0]}: {failures[0][1]})" if failures else
                               "no input could be prepared")
        n_sources = len({r["file"] for r in rows})
        metadata = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "galcnn_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": command or " ".join(sys.argv),
            "inputs": [os.path.abspath(i) if not str(i).startswith("@") else i for i in inputs],
            "classes": class_list,
            "class_counts": {split: {c: counts[split].get(c, 0) for c in class_list}
                             for split in ("train", "val", "test")},
            "n_samples": len(rows), "n_sources": n_sources, "n_failed": len(failures),
            "n_unlabelled_files": len(unlabelled), "n_labels_without_file": len(missing),
            "dropped_classes": dropped, "labels": {"source": label_source, **label_info},
            "bands": band_names or [str(i) for i in range(n_bands)], "n_bands": n_bands,
            "size": list(size), "dtype": options.dtype, "band_pattern": band_pattern,
            "options": options.to_dict(), "stretch": options.stretch.to_dict(),
            "shards": shards,
            "masks": ({"source": options.masks, "values": {"0": "background",
                       "1": "central object", "2": "other objects"}, "shards": mask_shards}
                      if mask_writer else None),
        }
        if label_map is None:
            metadata["class_counts"] = {}
            metadata["n_unlabelled_samples"] = counts["unlabelled"]["unlabelled"]
        write_manifest(os.path.join(tmp_dir, "manifest.csv"), rows)
        _write_failures(os.path.join(tmp_dir, "failed.csv"), failures)
        if unlabelled:
            _write_lines(os.path.join(tmp_dir, "unlabelled.txt"), [s.path_text for s in unlabelled])
        if missing:
            _write_lines(os.path.join(tmp_dir, "missing_files.txt"), missing)
        with open(os.path.join(tmp_dir, "metadata.json"), "w", encoding="utf-8") as handle:
            json.dump(metadata, handle, indent=2)
        _move_into_place(tmp_dir, out_dir, overwrite)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)

    class_counts = {split: dict(counts[split]) for split in SPLITS if counts[split]}
    return PrepareResult(out_dir=out_dir, n_sources=n_sources, n_samples=len(rows),
                         classes=class_list, class_counts=class_counts, failures=failures,
                         n_unlabelled=len(unlabelled), n_missing=len(missing),
                         dropped_classes=dropped, label_source=label_source, size=size,
                         n_bands=n_bands, n_bad_pixels=n_bad_pixels,
                         elapsed_s=time.monotonic() - started, masks=options.masks)
