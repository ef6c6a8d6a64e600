"""Sources through a model into a table, one row per input, as a pipeline stage.

What ``predict`` and ``embed`` are made of: the inputs (files, directories, globs, ``@lists``,
one file per band) become sources, the shard keeps its part of them, a resumed table skips
the inputs it holds, the :class:`~galcnn.runner.pipeline.InputPipeline` reads the rest in
order, the stage's :class:`Rows` computes each batch's values and makes its rows, and the
:class:`~galcnn.runner.table.TableSink` writes them, under the output's lock. A file that
cannot be used gets a row whose ``status`` says why; it never stops the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from galcnn.data.atomic import make_parent, remove_stale_temporaries
from galcnn.data.inputs import Source, canonical_key, collect_sources
from galcnn.data.lock import output_lock
from galcnn.data.reader import Sample
from galcnn.data.recipe import Preprocess
from galcnn.data.shards import in_shard
from galcnn.errors import naming_output
from galcnn.runner.model import LoadedModel, RunError
from galcnn.runner.pipeline import InputPipeline, Problem, ReadingOverrides
from galcnn.runner.table import TableSink, count_rows
from galcnn.runtime import inference_batch_size

__all__ = ["StreamOptions", "StreamResult", "Rows", "stream", "table_identity"]

logger = logging.getLogger("galcnn")


@dataclass
class StreamOptions(ReadingOverrides):
    """How a table is computed: where, in what precision, how many at once."""

    batch_size: int | None = None
    """None: :func:`galcnn.runtime.inference_batch_size`."""
    device: str = "auto"
    workers: int | None = None
    amp: bool = True
    device_stretch: bool | None = None
    """Run the recipe on the device, reading workers only decoding; None: on a GPU, for the
    recipes it supports (:class:`galcnn.device_recipe.DeviceRecipe`)."""
    shard: tuple[int, int] | None = None
    """``(K, N)``: only the K-th of N disjoint parts of the inputs."""
    resume: bool = False
    """Keep the complete rows of ``OUT.partial`` and skip their inputs."""
    overwrite: bool = False


@dataclass
class StreamResult:
    out_path: str
    n_rows: int
    n_ok: int
    n_failed: int
    n_skipped_resume: int
    elapsed_s: float
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """Inputs computed but flagged (``warning: ...`` status), such as constant images."""
    n_other_shards: int = 0
    """Inputs given that belong to other shards, left to their jobs."""


class Rows(Protocol):
    """What a stage puts into its table."""

    def compute(self, x: torch.Tensor) -> tuple[np.ndarray, ...]:
        """A batch of network inputs -> arrays with one row per input."""

    def row(self, source: Source, sample: Sample, values: list) -> dict:
        """The row of a computed input (``values``: its row of each array)."""


def table_identity(model: LoadedModel, recipe: Preprocess, shard: tuple[int, int] | None,
                   **options) -> dict:
    """What a resumable table's rows depend on (the model, how inputs are read, where and
    how the numbers are computed, the shard, the stage's ``options``): a resume with
    anything else is refused."""
    return {"model_sha256": model.checksum, "hdu": recipe.hdu,
            "band_pattern": recipe.band_pattern, "bands": list(recipe.bands or []),
            "device": model.device.type, "precision": model.precision,
            "shard": None if shard is None else f"{shard[0]}/{shard[1]}", **options}


def _failed(path: str, hdu, problem: str, object_id: str = "") -> dict:
    return {"id": object_id, "file": path, "hdu": hdu, "status": f"error: {problem}"}


def stream(model: LoadedModel, sink: TableSink, rows: Rows, inputs: list[str],
           options: StreamOptions, *, recipe: Preprocess,
           progress: Callable[[int], Callable[[int], None]] | None = None) -> StreamResult:
    """Write one row per input object of ``inputs`` into ``sink``'s output (see the module
    docstring); raises :class:`~galcnn.runner.model.RunError` for what stops the whole run."""
    started = time.monotonic()
    make_parent(sink.out_path)
    kept = f"the rows written so far are in {sink.partial}; free space, then --resume"
    with output_lock(sink.out_path), naming_output(sink.out_path, kept):
        remove_stale_temporaries(sink.out_path)
        if options.resume and not options.overwrite and sink.complete():
            logger.info("%s is already complete; nothing to resume", sink.out_path)
            n_rows = count_rows(sink.out_path, sink.fmt)
            return StreamResult(sink.out_path, n_rows, 0, 0, n_rows,
                                time.monotonic() - started)
        done = sink.open(resume=options.resume, overwrite=options.overwrite)
        try:
            result = _run(model, sink, rows, _Work(inputs, recipe, options.shard, done),
                          options, progress)
        finally:
            sink.close()
        result.elapsed_s = time.monotonic() - started
        return result


@dataclass
class _Work:
    """The inputs of one run: their sources in this shard, and those a resumed table has."""

    inputs: list[str]
    recipe: Preprocess
    shard: tuple[int, int] | None
    done: set[str]

    def sources(self) -> tuple[list[Source], list[tuple[str, str]], int, int]:
        """The sources still to do, files that fit no group, how many the table has, and
        how many inputs belong to other shards."""
        try:
            sources, _, problems = collect_sources(
                self.inputs, band_pattern=self.recipe.band_pattern,
                bands=self.recipe.bands or None)
        except ValueError as exc:
            raise RunError(str(exc)) from exc
        given = len(sources)
        sources = [s for s in sources if in_shard(s.key, self.shard)]
        problems = [(p, m) for p, m in problems if in_shard(canonical_key(p), self.shard)
                    and canonical_key(p) not in self.done]
        if not sources and not problems:
            raise RunError("no input files" + (f" in shard {self.shard[0]}/{self.shard[1]}"
                                                   if self.shard else ""))
        todo = [s for s in sources if s.key not in self.done]
        return todo, problems, len(sources) - len(todo), given - len(sources)


def _run(model: LoadedModel, sink: TableSink, rows: Rows, work: _Work,
         options: StreamOptions, progress) -> StreamResult:
    todo, problems, n_skipped, n_other = work.sources()
    pipeline = InputPipeline(work.recipe, model.device,
                             inference_batch_size(options.batch_size, model.device),
                             workers=options.workers, on_device=options.device_stretch)
    result = StreamResult(sink.out_path, 0, 0, 0, n_skipped, 0.0, n_other_shards=n_other)
    advance = progress(len(todo) + len(problems)) if progress else (lambda n: None)
    for path, problem in problems:
        sink.add(_failed(path, "", problem))
        result.failures.append((path, problem))
        advance(1)
    for event in pipeline.events(todo):
        if isinstance(event, Problem):
            source, sample = event.source, event.sample
            sink.add(_failed(source.path_text, sample.hdu, sample.problem, source.id))
            result.failures.append((source.path_text, sample.problem))
            advance(1)
            continue
        values = event.apply(rows.compute)
        for position, (source, sample) in enumerate(event.items):
            sink.add(rows.row(source, sample, [v[position] for v in values]))
            if sample.warning:
                result.warnings.append((source.path_text, sample.warning))
        result.n_ok += len(event)
        sink.flush()
        advance(len(event))
    sink.finish()
    result.n_failed = len(result.failures)
    result.n_rows = result.n_ok + result.n_failed + n_skipped
    return result
