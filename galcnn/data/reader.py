"""Read sources through the recipe in worker processes, in input order, with bounded memory.

What ``prepare``, ``predict`` and ``evaluate`` read through: one FITS object becomes one
:class:`Sample` (the network input, optional augmented copies and masks, its HDU and sky
position), or a sample whose ``problem`` says in one line why the object cannot be used. One
bad file never stops the stream. Each worker call reads a batch of sources and measures their
stretch statistics together (vectorised); at most two chunks of batches are in flight, so
memory does not grow with the number of inputs, and the output keeps the order of the tasks.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from galcnn.data.augment import D4, Rotation
from galcnn.data.fitsio import FitsReadError, centre_radec
from galcnn.data.geometry import rotate_to_size
from galcnn.data.inputs import Source
from galcnn.data.masks import cutout_mask
from galcnn.data.recipe import Preprocess
from galcnn.data.writer import store_samples

__all__ = ["ReadTask", "Sample", "read_batch", "read_sample", "read_samples", "DIED"]

logger = logging.getLogger("galcnn")


@dataclass(frozen=True, slots=True)
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
    stored: list[tuple[str, int]] = field(default_factory=list)
    """Where ``images`` were written instead (shard file, row), when the reader stores them."""
    stored_masks: list[tuple[str, int]] = field(default_factory=list)
    hdu: int = -1
    ra: float = float("nan")
    dec: float = float("nan")
    n_bad: int = 0
    band_names: list[str] = field(default_factory=list)
    problem: str | None = None
    warning: str | None = None
    """Usable but meaningless (:meth:`Preprocess.warning`); a problem under ``strict``."""

    @property
    def image(self) -> np.ndarray:
        return self.images[0]


def read_batch(tasks: list[ReadTask], recipe: Preprocess, *, same_size: bool = False,
               masks: str = "none", mask_nsigma: float = 2.0, raw: bool = False,
               store: str | None = None, expected: str = "expected",
               strict: bool = False) -> list[Sample]:
    """Read, check and preprocess sources, one :class:`Sample` each (see
    :meth:`Preprocess.problem` for ``same_size``); ``masks`` is ``none``, ``auto`` or
    ``hdu:NAME``. The stretch statistics of the batch are measured together. ``raw``: the
    images as read (float32, NaN for bad pixels), for the recipe to run on a device.
    ``store``: write the batch's images into a shard of that prepared-dataset directory
    (:func:`galcnn.data.writer.store_samples`), so that only their places travel back.
    ``expected``: whose the recipe is, in problems (``the model needs``). ``strict``: a
    warning (a constant image) is a problem, as for training data."""
    samples, images, usable = [], [], []
    for task in tasks:
        sample, data = _read_and_check(task, recipe, same_size, masks, mask_nsigma, expected,
                                       strict)
        samples.append(sample)
        if data is not None and raw:
            sample.images, sample.transforms = [data], ["identity"]
        elif data is not None:
            images.append(data)
            usable.append((task, sample))
    for (task, sample), normalised in zip(usable, _normalised(recipe, images, usable)):
        if normalised is None:
            continue
        try:
            sample.images, sample.transforms = _with_copies(recipe, normalised, task.transforms)
        except Exception as exc:  # one odd file must never stop a batch
            sample.problem = f"could not be prepared ({type(exc).__name__}: {exc})"
            sample.masks = []
    if store and tasks:
        store_samples([s for s in samples if not s.problem], store,
                      f"shard-{tasks[0].index:09d}.npy")
    return samples


def read_sample(task: ReadTask, recipe: Preprocess, **options) -> Sample:
    """:func:`read_batch` of one source."""
    return read_batch([task], recipe, **options)[0]


def _read_and_check(task: ReadTask, recipe: Preprocess, same_size: bool, masks: str,
                    mask_nsigma: float, expected: str, strict: bool
                    ) -> tuple[Sample, np.ndarray | None]:
    """The sample so far (HDU, position, masks, or its problem) and the image to normalise."""
    try:
        image = recipe.read(task.source.paths)
    except FitsReadError as exc:
        return Sample(task.index, problem=exc.problem), None
    sample = Sample(task.index, hdu=image.hdu, n_bad=image.n_bad, band_names=image.band_names)
    sample.problem = recipe.problem(image, same_size=same_size, expected=expected)
    if not sample.problem:
        sample.warning = recipe.warning(image)
        if strict and sample.warning:
            sample.problem, sample.warning = sample.warning, None
    if sample.problem:
        return sample, None
    try:
        if masks != "none":
            try:
                base = cutout_mask(task.source.paths[0], image.data, masks, recipe.size,
                                   fit=recipe.fit, nsigma=mask_nsigma)
            except ValueError as exc:  # a missing or unusable mask: the file's problem
                return Sample(task.index, hdu=image.hdu, problem=str(exc)), None
            sample.masks = [base] + [t(base[None])[0].copy() for t in task.transforms]
        sample.ra, sample.dec = centre_radec(image.header, image.shape)
    except Exception as exc:  # one odd file must never stop a batch
        return Sample(task.index, hdu=image.hdu,
                      problem=f"could not be prepared ({type(exc).__name__}: {exc})"), None
    return sample, image.data


def _normalised(recipe: Preprocess, images: list[np.ndarray], usable: list) -> list:
    """The batch normalised together; should that fail, each image alone, so that one odd
    image costs only its own sample."""
    try:
        return recipe.normalise_all(images)
    except Exception:
        results = []
        for image, (_, sample) in zip(images, usable):
            try:
                results.append(recipe.normalise(image))
            except Exception as exc:
                sample.problem = f"could not be prepared ({type(exc).__name__}: {exc})"
                sample.masks = []
                results.append(None)
        return results


def _with_copies(recipe: Preprocess, normalised: np.ndarray, transforms) -> tuple[list, list[str]]:
    """The input, then a copy per transform: symmetry elements of the fitted input, or
    rotations by any angle resampled once from the stretched image (no empty corners)."""
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


def _worker_signals() -> None:
    """Reading workers leave Ctrl-C to the main process and die at once on SIGTERM, which is
    how a pool ends them. A Python-level handler inherited through fork runs only between
    bytecodes: a SIGTERM that arrived just before a worker blocked on the pool's queue was
    never acted on, and the pool waited for that worker forever (seen as a hung test run)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def read_samples(tasks: list[ReadTask], recipe: Preprocess, *, workers: int = 1,
                 chunk: int = 256, batch: int = 64, **options) -> Iterator[Sample]:
    """The samples of every task, in order, read by ``workers`` processes in batches of
    ``batch`` tasks (``options`` as for :func:`read_batch`); at most two chunks of ``chunk``
    tasks are in flight.

    A reading process that dies (killed by the kernel's out-of-memory killer, say) loses no
    input and hangs nothing: the pool starts again and reads the batches it held again, each
    on its own, and one line on the log says so; a batch whose reading breaks the pool again
    gets a problem per source instead of a third try."""
    read = partial(read_batch, recipe=recipe, **options)
    batches = [tasks[i:i + batch] for i in range(0, len(tasks), batch)]
    if workers <= 1 or len(batches) < 2:
        for group in batches:
            yield from read(group)
        return
    yield from _pooled(read, batches, min(workers, len(batches)),
                       window=2 * max(1, chunk // batch))


#: The problem of a source whose reading process died twice.
DIED = ("the reading process died while reading it, twice (killed: out of memory, or by a "
        "signal)")


def _pooled(read, batches: list[list[ReadTask]], workers: int, window: int
            ) -> Iterator[Sample]:
    """``read`` of each batch by a pool of processes, in order, ``window`` batches ahead;
    a pool that loses a process is replaced (see :func:`read_samples`)."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    broken_in = [0] * len(batches)  # how many broken pools each batch was in flight in
    position = 0
    while position < len(batches):
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_signals)
        futures: dict = {}
        try:
            while position < len(batches):
                # a batch in flight when a pool broke is read again alone: if the pool breaks
                # again, it was that batch, and no other batch is failed with it
                alone = broken_in[position] == 1
                for ahead in range(position, min(position + (1 if alone else window),
                                                 len(batches))):
                    if ahead not in futures and broken_in[ahead] < 2 and \
                            (ahead == position or not broken_in[ahead]):
                        futures[ahead] = pool.submit(read, batches[ahead])
                if broken_in[position] >= 2:
                    done = [Sample(t.index, problem=DIED) for t in batches[position]]
                else:
                    done = futures[position].result()  # stays in futures if the pool broke
                    del futures[position]
                yield from done
                position += 1
        except BrokenProcessPool:
            for index in futures:
                broken_in[index] += 1
            logger.warning("a reading process died (killed: out of memory, or by a signal); "
                           "reading the %d batch(es) it had in hand again", len(futures))
        except BaseException:  # the reader stops early (an error, Ctrl-C): end the workers
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
