"""FITS cutouts in, a memory-mappable training set out: what ``galcnn prepare`` runs, and what
``train`` runs on raw cutouts.

Inputs become sources (:mod:`galcnn.data.inputs`), get labels (:mod:`galcnn.data.labels`) and
a split (:mod:`galcnn.data.splits`); the band count and native size are probed from the first
readable files and complete the recipe (:class:`galcnn.data.recipe.Preprocess`); every source
is then read through the recipe in parallel (:mod:`galcnn.data.reader`), training samples with
their augmented copies, and written (:mod:`galcnn.data.writer`). The recipe is recorded in
``metadata.json``, so a model trained on the set rebuilds exactly these inputs. The output
appears only when complete.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import numpy as np

from galcnn import __version__
from galcnn.choices import GROUPS, unknown_choice
from galcnn.data.augment import (check_mirror_pairs, choose_transforms, find_mirror_pairs,
                                 is_reflection)
from galcnn.data.fitsio import FitsReadError
from galcnn.data.inputs import Source, collect_sources
from galcnn.data.labels import choose_classes, resolve_labels
from galcnn.data.lock import new_directory_output
from galcnn.data.masks import parse_mask_source
from galcnn.data.reader import ReadTask, read_samples
from galcnn.data.recipe import Preprocess
from galcnn.data.splits import SPLITS, assign_splits
from galcnn.data.writer import DatasetWriter
from galcnn.errors import GalcnnError
from galcnn.runtime import worker_count

logger = logging.getLogger("galcnn")

__all__ = ["PrepareOptions", "PrepareResult", "PrepareError", "prepare"]

N_PROBE = 16


class PrepareError(GalcnnError):
    """Nothing could be prepared (bad options, no inputs, no readable file)."""


@dataclass(frozen=True)
class PrepareOptions:
    """The recipe, and how the training set is drawn from the inputs."""

    preprocess: Preprocess = field(default_factory=Preprocess)
    augment: str = "none"
    """Symmetry group of the augmented copies (:mod:`galcnn.data.augment`)."""
    copies: int = 0
    """Augmented copies per training cutout."""
    val_fraction: float = 0.15
    test_fraction: float = 0.0
    seed: int = 0
    masks: str = "none"
    """``none``, ``auto`` (derived, :func:`galcnn.data.masks.derive_mask`) or ``hdu:NAME``."""
    mask_nsigma: float = 2.0
    mirror_pairs: tuple[tuple[str, str], ...] | None = None
    """Classes that are mirror images of each other (a reflected copy of one is labelled as
    the other); None: found by name (``spiral_cw``/``spiral_acw``, ...)."""
    labels: str | None = None
    """A label table; without one, a ``labels.csv`` inside a single input directory, then
    class-named subdirectories, are used."""
    id_column: str | None = None
    label_column: str | None = None
    where: dict[str, str] | None = None
    """Keep only the label table's rows whose columns have these values."""
    weight_column: str | None = None
    """A label-table column giving each sample a loss weight
    (:func:`galcnn.data.labels.weight_of`): MiraBest's ``confident``."""
    weight_map: dict[str, float] | None = None
    """Weights for the weight column's values (``{"0": 0.5}``), before its numbers."""
    classes: list[str] | None = None
    """Keep only these classes, in this order."""
    no_labels: bool = False
    """A set to predict on: no labels looked for."""
    workers: int | None = None
    overwrite: bool = False

    def __post_init__(self):
        if self.augment not in GROUPS:
            raise ValueError(unknown_choice("augmentation", self.augment, GROUPS))
        if self.copies < 0:
            raise ValueError(f"--copies must be >= 0, got {self.copies}")
        if self.copies and self.augment == "none":
            raise ValueError("--copies needs an augmentation group (--augment rot90, dihedral "
                             "or rotate)")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1
                and self.val_fraction + self.test_fraction < 1):
            raise ValueError("validation and test fractions must be in [0, 1) and sum to < 1")
        object.__setattr__(self, "masks", parse_mask_source(self.masks))
        if self.masks != "none" and self.copies and self.augment == "rotate":
            raise ValueError("--masks cannot be combined with --augment rotate --copies "
                             "(interpolated masks); use rot90 or dihedral copies")
        if self.mask_nsigma <= 0:
            raise ValueError(f"--mask-nsigma must be > 0, got {self.mask_nsigma}")

    def to_dict(self) -> dict:
        """How the set was drawn (the recipe is stored on its own as ``preprocess``, the
        labels' origin as ``labels``)."""
        return {"augment": self.augment, "copies": self.copies,
                "val_fraction": self.val_fraction, "test_fraction": self.test_fraction,
                "seed": self.seed, "masks": self.masks, "mask_nsigma": self.mask_nsigma,
                "mirror_pairs": None if self.mirror_pairs is None
                else [list(p) for p in self.mirror_pairs]}


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


def prepare(inputs: list[str], out_dir: str, options: PrepareOptions | None = None, *,
            progress: Callable[[int], Callable[[int], None]] | None = None,
            command: str | None = None, **changes) -> PrepareResult:
    """Prepare FITS cutouts ``inputs`` (files, directories searched recursively, globs,
    ``@list`` files) into ``out_dir``, written under a temporary name and renamed when
    complete; ``changes`` are fields of :class:`PrepareOptions` (``prepare(inputs, out,
    labels="zoo.csv")``). ``progress(total)`` returns ``advance(n)``.

    Raises :class:`PrepareError` when nothing can be prepared; per-file problems are
    returned, not raised.
    """
    started = time.monotonic()
    options = replace(options or PrepareOptions(), **changes)
    with new_directory_output(out_dir, options.overwrite, PrepareError):
        chosen = _choose(inputs, options)
        recipe, same_size = _complete_recipe(chosen, options)
        with DatasetWriter(out_dir, (recipe.n_bands, *recipe.size), recipe.dtype,
                           masks=options.masks != "none",
                           overwrite=options.overwrite) as writer:
            written = _write(writer, chosen, recipe, options, same_size, progress)
            _commit(writer, written, chosen, recipe, options, inputs, command)
    return PrepareResult(out_dir=out_dir, n_sources=written.n_sources,
                         n_samples=written.n_samples, classes=chosen.classes,
                         class_counts={s: dict(written.counts[s]) for s in SPLITS
                                       if written.counts[s]},
                         failures=chosen.failures, n_unlabelled=len(chosen.found.unlabelled),
                         n_missing=len(chosen.found.missing), dropped_classes=chosen.dropped,
                         label_source=chosen.found.source, size=recipe.size,
                         n_bands=recipe.n_bands, n_bad_pixels=written.n_bad_pixels,
                         elapsed_s=time.monotonic() - started, masks=options.masks)


@dataclass
class _Chosen:
    """The sources to prepare, their labels, classes and splits."""

    used: list[Source]
    band_order: list[str] | None
    failures: list[tuple[str, str]]
    found: object
    classes: list[str]
    label_map: dict | None
    dropped: dict[str, int]
    pairs: list[tuple[str, str]]
    splits: dict


def _choose(inputs: list[str], options: PrepareOptions) -> _Chosen:
    """Sources, labels, classes (with their mirror pairs) and splits."""
    recipe = options.preprocess
    try:
        sources, band_order, failures = collect_sources(
            inputs, band_pattern=recipe.band_pattern, bands=recipe.bands, require_any=True)
        found = resolve_labels(sources, inputs, table=options.labels,
                               id_column=options.id_column, label_column=options.label_column,
                               where=options.where, no_labels=options.no_labels,
                               weight_column=options.weight_column,
                               weight_map=options.weight_map)
        if found.labels is not None:
            class_list, label_map, dropped = choose_classes(found.labels, options.classes)
        elif options.classes:
            raise PrepareError("--classes needs labels (a table or class-named folders)")
        else:
            class_list, label_map, dropped = [], None, {}
        pairs = (find_mirror_pairs(class_list) if options.mirror_pairs is None
                 else check_mirror_pairs(options.mirror_pairs, class_list))
    except ValueError as exc:
        raise PrepareError(str(exc)) from exc
    used = [s for s in sources if label_map is None or s in label_map]
    if not used:
        raise PrepareError("no labelled input left to prepare")
    splits = assign_splits(used, label_map, val_fraction=options.val_fraction,
                           test_fraction=options.test_fraction, seed=options.seed)
    _warn_about_labels(found.info.get("conflicting_ids") or [], label_map, splits)
    return _Chosen(used, band_order, failures, found, class_list, label_map, dropped,
                   list(pairs), splits)


def _complete_recipe(chosen: _Chosen, options: PrepareOptions) -> tuple[Preprocess, bool]:
    """The recipe with what the inputs tell (bands, native size, the network's size), and
    whether every cutout must have the native size (none given, none binned to)."""
    n_bands, native_size, probe_bands = _probe(chosen.used, options.preprocess)
    names = chosen.band_order or probe_bands
    if len(names) != n_bands:
        names = [str(i) for i in range(n_bands)]
    recipe = options.preprocess.for_task(native_size, dense=options.masks != "none")
    binned = recipe.size is not None and options.preprocess.size is None
    if binned:
        logger.info("cutouts of %dx%d pixels are binned to %dx%d for the network (field "
                    "kept; --size N to choose)", native_size[1], native_size[0],
                    recipe.size[1], recipe.size[0])
    return (recipe.with_inputs(names, native_size),
            options.preprocess.size is None and not binned)


@dataclass
class _Written:
    """What was written, counted."""

    counts: dict[str, Counter]
    n_bad_pixels: int = 0
    n_sources: int = 0
    n_samples: int = 0


def _write(writer: DatasetWriter, chosen: _Chosen, recipe: Preprocess,
           options: PrepareOptions, same_size: bool, progress) -> _Written:
    """Read every source through the recipe (training ones with their augmented copies) and
    hand the samples to ``writer``; a source that cannot be used joins the failures."""
    tasks = [ReadTask(i, s, _copies(options, i) if chosen.splits[s] == "train" else ())
             for i, s in enumerate(chosen.used)]
    class_index = {name: i for i, name in enumerate(chosen.classes)}
    partner = {**dict(chosen.pairs), **{b: a for a, b in chosen.pairs}}
    written = _Written({split: Counter() for split in SPLITS})
    advance = progress(len(tasks)) if progress else (lambda n: None)
    for sample in read_samples(tasks, recipe, workers=worker_count(options.workers),
                               store=writer.tmp_dir, same_size=same_size, masks=options.masks,
                               mask_nsigma=options.mask_nsigma, strict=True):
        source = chosen.used[sample.index]
        advance(1)
        if sample.problem:
            chosen.failures.append((source.path_text, sample.problem))
            continue
        label = chosen.label_map[source] if chosen.label_map is not None else ""
        written.n_bad_pixels += sample.n_bad
        mirror = partner.get(label)
        for transform in sample.transforms:
            name = mirror if mirror and is_reflection(transform) else label
            written.counts[chosen.splits[source]][name or "unlabelled"] += 1
        writer.add(source, sample, label=label, label_index=class_index.get(label, -1),
                   split=chosen.splits[source],
                   reflected=(mirror, class_index[mirror]) if mirror else None,
                   weight=(chosen.found.weights or {}).get(source, 1.0))
    return written


def _commit(writer: DatasetWriter, written: _Written, chosen: _Chosen, recipe: Preprocess,
            options: PrepareOptions, inputs: list[str], command: str | None) -> None:
    """Write the metadata and lists, and make the set appear under its name."""
    failures, found, counts = chosen.failures, chosen.found, written.counts
    if not writer.rows:
        raise PrepareError(f"no input could be prepared ({len(failures)} failed, e.g. "
                           f"{failures[0][0]}: {failures[0][1]})" if failures else
                           "no input could be prepared")
    written.n_sources = len({r["file"] for r in writer.rows})
    written.n_samples = len(writer.rows)
    metadata = {
        "galcnn_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command or " ".join(sys.argv),
        "inputs": [os.path.abspath(i) if not str(i).startswith("@") else i for i in inputs],
        "classes": chosen.classes,
        "class_counts": {split: {c: counts[split].get(c, 0) for c in chosen.classes}
                         for split in ("train", "val", "test")} if chosen.label_map else {},
        "n_samples": written.n_samples, "n_sources": written.n_sources,
        "n_failed": len(failures), "n_unlabelled_files": len(found.unlabelled),
        "n_labels_without_file": len(found.missing), "dropped_classes": chosen.dropped,
        "labels": {"source": found.source, **found.info},
        "mirror_pairs": [list(p) for p in chosen.pairs],
        "preprocess": recipe.to_dict(), "options": options.to_dict(),
    }
    if chosen.label_map is None:
        metadata["n_unlabelled_samples"] = counts["unlabelled"]["unlabelled"]
    if options.masks != "none":
        metadata["masks"] = {"source": options.masks, "values": {
            "0": "background", "1": "central object", "2": "other objects"}}
    writer.commit(metadata, failures=failures, lists={
        "unlabelled.txt": [s.path_text for s in found.unlabelled],
        "missing_files.txt": found.missing})


def _copies(options: PrepareOptions, index: int) -> tuple:
    """The augmentation transforms of training source ``index`` (seeded per source)."""
    if not options.copies:
        return ()
    rng = np.random.default_rng([options.seed, index])
    return tuple(choose_transforms(options.augment, options.copies, rng))


def _warn_about_labels(conflicts: list[str], label_map: dict | None, splits: dict) -> None:
    """Say on screen what would otherwise hide in metadata.json: ids the label table gives
    two labels (left unlabelled), and classes with no validation sample."""
    if conflicts:
        logger.warning("labels: %d id(s) have two different labels and were left unlabelled "
                       "(e.g. %s); see metadata.json, conflicting_ids",
                       len(conflicts), ", ".join(conflicts[:3]))
    if not label_map:
        return
    members = Counter(label_map.values())
    if len(members) == 1:
        logger.warning("the labels name one class only (%s): a classifier needs two or more "
                       "(add the other class folders, or --no-labels for a set to predict)",
                       next(iter(members)))
    in_val = Counter(label_map[s] for s, split in splits.items() if split == "val")
    for name in sorted(members):
        if members[name] < 2 or not in_val[name] and any(in_val.values()):
            logger.warning("class %s has %d sample(s), %d in validation: too few to train "
                           "or validate; add examples or leave it out with --classes",
                           name, members[name], in_val[name])


def _probe(sources: list[Source], recipe: Preprocess) -> tuple[int, tuple[int, int], list[str]]:
    """Band count, native size and band names from the first readable sources (the most
    common shape wins). Raises PrepareError when none of them can be read."""
    shapes: Counter = Counter()
    band_names: list[str] = []
    first_problem = None
    for source in sources[: N_PROBE * 4]:
        try:
            image = recipe.read(source.paths)
        except FitsReadError as exc:
            first_problem = first_problem or exc
            continue
        shapes[(image.n_bands, *image.shape)] += 1
        band_names = band_names or image.band_names
        if sum(shapes.values()) >= N_PROBE:
            break
    if not shapes:
        raise PrepareError(f"none of the first inputs could be read, e.g. {first_problem}")
    n_bands, height, width = shapes.most_common(1)[0][0]
    return n_bands, (height, width), band_names
