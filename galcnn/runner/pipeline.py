"""Sources in, network inputs out, in input order: the one reading path of every command.

:class:`InputPipeline` reads sources through a recipe in worker processes
(:func:`galcnn.data.reader.read_samples`) and hands out, in the order of the sources, either
a :class:`Batch` of usable ones or a :class:`Problem` for one that cannot be used (a batch
is handed out before a later problem, so rows keep the input order). It decides where the
recipe runs: on a GPU, for every recipe the device recipe covers, the workers only decode
FITS files and the statistics, stretch, fill and geometry run on the device in batches
(:class:`galcnn.device_recipe.DeviceRecipe`); elsewhere the workers prepare the inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from galcnn.data.inputs import Source
from galcnn.data.reader import ReadTask, Sample, read_samples
from galcnn.data.recipe import Preprocess
from galcnn.device_recipe import DeviceRecipe
from galcnn.inference import as_batch
from galcnn.runtime import worker_count

__all__ = ["InputPipeline", "Batch", "Problem", "ReadingOverrides"]


@dataclass(kw_only=True)
class ReadingOverrides:
    """How to read inputs that a model's card would read otherwise: a command's options
    inherit these (given by keyword), and :meth:`recipe` applies them to the card's."""

    hdu: int | str | None = None
    """The image HDU (index or name); None: the card's rule."""
    band_pattern: str | None = None
    """How one object's files per band are named (``{band}`` in the name)."""
    bands: list[str] | None = None
    """The band order; None: the card's."""

    def recipe(self, card_recipe: Preprocess) -> Preprocess:
        """The card's recipe reading by these overrides; its stretch and size stay."""
        return card_recipe.reading(self.hdu, self.band_pattern, self.bands)


@dataclass
class Problem:
    """A source that cannot be used, and why (``sample.problem``)."""

    source: Source
    sample: Sample


@dataclass
class Batch:
    """Usable sources and their network inputs, on the device."""

    items: list[tuple[Source, Sample]]
    groups: list[tuple[list[int], torch.Tensor]]
    """Inputs by image shape: positions in ``items`` and their ``(n, bands, y, x)`` tensor
    (one group when the CPU prepared them: they all have the recipe's size)."""

    def __len__(self) -> int:
        return len(self.items)

    def apply(self, compute: Callable[[torch.Tensor], tuple[np.ndarray, ...]]
              ) -> tuple[np.ndarray, ...]:
        """``compute``'s arrays (one row per input) for the whole batch, in its order."""
        values: list[np.ndarray] = []
        for positions, x in self.groups:
            for index, part in enumerate(compute(x)):
                if len(values) <= index:
                    values.append(np.zeros((len(self.items), *part.shape[1:]), part.dtype))
                values[index][positions] = part
        return tuple(values)


class InputPipeline:
    """Read sources through ``recipe`` into batches of ``batch_size`` on ``device``.

    ``on_device``: run the recipe on the device (None: on a GPU, where the device recipe
    covers the recipe); ``workers``: reading processes (None: the one policy of
    :func:`galcnn.runtime.worker_count`)."""

    def __init__(self, recipe: Preprocess, device: torch.device, batch_size: int, *,
                 workers: int | None = None, on_device: bool | None = None,
                 expected: str = "the model needs"):
        self.recipe, self.device, self.batch_size = recipe, device, batch_size
        self.workers = worker_count(workers, device=device)
        chosen = device.type == "cuda" if on_device is None else on_device
        self.device_recipe = (DeviceRecipe(recipe, device) if chosen
                              and DeviceRecipe.supports(recipe) else None)
        self.expected = expected

    @property
    def on_device(self) -> bool:
        return self.device_recipe is not None

    def events(self, sources: list[Source]) -> Iterator[Batch | Problem]:
        """A :class:`Batch` per ``batch_size`` usable sources and a :class:`Problem` per
        unusable one, in the order of ``sources``."""
        pending: list[tuple[Source, Sample]] = []
        tasks = [ReadTask(i, s) for i, s in enumerate(sources)]
        for sample in read_samples(tasks, self.recipe, workers=self.workers,
                                   raw=self.on_device, expected=self.expected,
                                   chunk=max(256, self.batch_size)):
            source = sources[sample.index]
            if sample.problem:
                if pending:
                    yield self._batch(pending)
                    pending = []
                yield Problem(source, sample)
                continue
            pending.append((source, sample))
            if len(pending) >= self.batch_size:
                yield self._batch(pending)
                pending = []
        if pending:
            yield self._batch(pending)

    def _batch(self, items: list[tuple[Source, Sample]]) -> Batch:
        images = [sample.image for _, sample in items]
        if self.device_recipe is None:
            return Batch(items, [(list(range(len(items))), as_batch(np.stack(images),
                                                                    self.device))])
        by_shape: dict[tuple, list[int]] = {}
        for position, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(position)
        groups = []
        for positions in by_shape.values():
            raw = torch.from_numpy(np.stack([images[p] for p in positions]))
            if self.device.type == "cuda":
                raw = raw.pin_memory()
            groups.append((positions, self.device_recipe(raw).contiguous(
                memory_format=torch.channels_last)))
        return Batch(items, groups)
