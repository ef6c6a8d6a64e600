"""Read sources through the recipe in worker processes, in input order, with bounded memory.

What ``prepare``, ``predict`` and ``evaluate`` read through: one FITS object becomes one
:class:`Sample` (the network input, optional augmented copies and masks, its HDU and sky
position), or a sample whose ``problem`` says in one line why the object cannot be used. One
bad file never stops the stream. At most two chunks of tasks are in flight, so memory does not
grow with the number of inputs, and the order of the output is the order of the tasks.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from galcnn.data.augment import D4, Rotation
from galcnn.data.fitsio import FitsReadError, centre_radec
from galcnn.data.geometry import rotate_to_size
from galcnn.data.inputs import Source
from galcnn.data.masks import cutout_mask
from galcnn.data.recipe import Preprocess

__all__ = ["ReadTask", "Sample", "read_sample", "read_samples"]


@dataclass(frozen=True)
class ReadTask:
    """One source to read, and the augmentation copies to make of it (training only)."""

    index: int
    source: Source
    transforms: tuple[D4 | Rotation, ...] = ()


@dataclass
class Sample:
    """What one source gave: ``images[0]`` is the network input, then one per transform."""

    index: int
    images: list[np.ndarray] = field(default_factory=list)
    transforms: list[str] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    hdu: int = -1
    ra: float = float("nan")
    dec: float = float("nan")
    n_bad: int = 0
    band_names: list[str] = field(default_factory=list)
    problem: str | None = None

    @property
    def image(self) -> np.ndarray:
        return self.images[0]


def read_sample(task: ReadTask, recipe: Preprocess, *, same_size: bool = False,
                masks: str = "none", mask_nsigma: float = 2.0) -> Sample:
    """Read, check and preprocess one source (see :meth:`Preprocess.problem` for
    ``same_size``); ``masks`` is ``none``, ``auto`` or ``hdu:NAME``."""
    try:
        image = recipe.read(task.source.paths)
    except FitsReadError as exc:
        return Sample(task.index, problem=exc.problem)
    sample = Sample(task.index, hdu=image.hdu, n_bad=image.n_bad, band_names=image.band_names)
    sample.problem = recipe.problem(image, same_size=same_size)
    if sample.problem:
        return sample
    try:
        if masks != "none":
            try:
                base = cutout_mask(task.source.paths[0], image.data, masks, recipe.size,
                                   fit=recipe.fit, nsigma=mask_nsigma)
            except ValueError as exc:  # a missing or unusable mask: the file's problem
                return Sample(task.index, hdu=image.hdu, problem=str(exc))
            sample.masks = [base] + [t(base[None])[0].copy() for t in task.transforms]
        sample.images, sample.transforms = _with_copies(recipe, image.data, task.transforms)
        sample.ra, sample.dec = centre_radec(image.header, image.shape)
    except Exception as exc:  # one odd file must never stop a batch
        return Sample(task.index, hdu=image.hdu,
                      problem=f"could not be prepared ({type(exc).__name__}: {exc})")
    return sample


def _with_copies(recipe: Preprocess, data: np.ndarray, transforms) -> tuple[list, list[str]]:
    """The input, then a copy per transform: symmetry elements of the fitted input, or
    rotations by any angle resampled once from the stretched image (no empty corners)."""
    normalised = recipe.normalise(data)
    base = recipe.fit_to_size(normalised)
    images, names = [base], ["identity"]
    for transform in transforms:
        if isinstance(transform, D4):
            images.append(transform(base))
            names.append(transform.name)
        else:
            rotated, zoom = rotate_to_size(normalised, recipe.size, transform.angle,
                                           fit=recipe.fit)
            images.append(rotated)
            names.append(transform.name + (f",zoom:{zoom:.3f}" if zoom > 1.0005 else ""))
    return [image.astype(recipe.dtype, copy=False) for image in images], names


def read_samples(tasks: list[ReadTask], recipe: Preprocess, *, workers: int = 1,
                 chunk: int = 256, **options) -> Iterator[Sample]:
    """:func:`read_sample` of every task, in order, by ``workers`` processes (``options`` as
    for :func:`read_sample`)."""
    read = partial(read_sample, recipe=recipe, **options)
    if workers <= 1 or len(tasks) < 2:
        yield from map(read, tasks)
        return
    chunks = [tasks[i:i + chunk] for i in range(0, len(tasks), chunk)]
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Pool(min(workers, len(tasks))) as pool:
        pending = pool.imap(read, chunks[0], chunksize=4)
        for following in chunks[1:] + [None]:
            current = pending
            pending = pool.imap(read, following, chunksize=4) if following else None
            yield from current
