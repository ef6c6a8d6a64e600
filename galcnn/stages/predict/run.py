"""``galcnn predict``: calibrated class beliefs for any number of cutouts, as a pipeline stage.

Inputs are read through the model card's recipe in worker processes with at most two chunks
in flight, so memory stays bounded, and go through the model pooled over its symmetry group
(the model that training validated). Rows are appended to ``OUT.partial`` and flushed as each
batch finishes; the file is renamed to ``OUT`` only when every input has a row.
``resume=True`` keeps the complete rows of a partial file and skips their inputs. A file that
cannot be used gets a row whose ``status`` says why; it never stops the run.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from galcnn.checkpoint import file_checksum, load_model
from galcnn.choices import TABLE_FORMATS
from galcnn.data.atomic import make_parent, remove_stale_temporaries
from galcnn.data.inputs import canonical_key, collect_sources
from galcnn.data.lock import output_lock
from galcnn.data.reader import ReadTask, read_samples
from galcnn.data.shards import in_shard
from galcnn.device_recipe import DeviceRecipe
from galcnn.errors import GalcnnError, naming_output
from galcnn.inference import Predictor
from galcnn.runtime import inference_batch_size, select_device, worker_count
from galcnn.stages.predict.table import (check_identity, columns_for, count_rows, done_files,
                                         finish_table, format_row, write_identity)

__all__ = ["PredictOptions", "PredictResult", "PredictError", "predict", "TableSpec",
           "write_table"]

logger = logging.getLogger("galcnn")


class PredictError(GalcnnError):
    """Nothing can be predicted (bad model, options or output path); one line."""


@dataclass
class PredictOptions:
    batch_size: int | None = None
    """None: :func:`galcnn.runtime.inference_batch_size`."""
    spread: bool = False
    """Add the spread of beliefs across the group's copies (the beliefs do not change)."""
    mc_dropout: int = 0
    device: str = "auto"
    workers: int | None = None
    amp: bool = True
    format: str = "csv"
    device_stretch: bool | None = None
    """Run the recipe on the device, reading workers only decoding; None: on a GPU, for the
    recipes it supports (:class:`galcnn.device_recipe.DeviceRecipe`)."""


@dataclass
class PredictResult:
    out_path: str
    n_rows: int
    n_ok: int
    n_failed: int
    n_skipped_resume: int
    elapsed_s: float
    failures: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """Inputs predicted but flagged (``warning: ...`` status), such as constant images."""
    n_other_shards: int = 0
    """Inputs given that belong to other shards (``shard``), left to their jobs."""


def predict(model_path: str, inputs: list[str], out_path: str,
            options: PredictOptions | None = None, *, shard: tuple[int, int] | None = None,
            resume: bool = False, overwrite: bool = False, hdu: int | str | None = None,
            band_pattern: str | None = None, bands: list[str] | None = None,
            progress: Callable[[int], Callable[[int], None]] | None = None) -> PredictResult:
    """Write one row per input object of ``inputs`` (files, directories, globs, ``@lists``);
    ``hdu``, ``band_pattern`` and ``bands`` override the model's reading rules."""
    started = time.monotonic()
    options = options or PredictOptions()
    if options.format not in TABLE_FORMATS:
        raise PredictError(f"unknown format {options.format!r}; choose "
                           f"{', '.join(TABLE_FORMATS)}")
    device = select_device(options.device)
    model = load_model(model_path, device)
    card = model.card
    if card.task != "classify":
        raise PredictError(f"{model_path}: a {card.task} model; use 'galcnn segment'")
    predictor = Predictor(model, device, amp=options.amp, mc_dropout=options.mc_dropout)
    recipe = card.preprocess.reading(hdu, band_pattern, bands)

    checksum = file_checksum(model_path)
    identity = {"model_sha256": checksum, "classes": list(card.classes),
                "hdu": recipe.hdu, "band_pattern": recipe.band_pattern,
                "bands": list(recipe.bands or []), "mc_dropout": options.mc_dropout,
                "spread": options.spread, "format": options.format, **predictor.identity}
    classes = card.classes

    def row(object_id, path, hdu, ra, dec, values=None, status="ok") -> list:
        if values is None:
            return format_row(object_id, path, hdu, "", "", classes, status=status)
        return format_row(object_id, path, hdu, ra, dec, classes, values[0], values[1], status)

    spec = TableSpec(
        columns=columns_for(classes), identity=identity, row=row,
        compute=lambda x: predictor.beliefs(x, spread=options.spread),
        finish=lambda partial: finish_table(partial, out_path, options.format, card,
                                            checksum))
    return write_table(spec, inputs, out_path, options, device, recipe, started=started,
                       shard=shard, resume=resume, overwrite=overwrite, progress=progress)


@dataclass
class TableSpec:
    """What one table of per-object values is made of (predict's beliefs, embed's vectors)."""

    columns: list[str]
    identity: dict
    """The model and options that write it: a resume with anything else is refused."""
    compute: Callable[[torch.Tensor], tuple[np.ndarray, ...]]
    """A batch of network inputs -> arrays with one row per input."""
    row: Callable[..., list]
    """``row(id, file, hdu, ra, dec, values=None, status="ok")``: a table row; without
    ``values`` (one row of each array from ``compute``) a failed input's row."""
    finish: Callable[[str], None]
    """The complete partial CSV -> the output file."""


def write_table(spec: TableSpec, inputs: list[str], out_path: str, options, device,
                recipe, *, started: float, shard=None, resume: bool = False,
                overwrite: bool = False, progress=None) -> PredictResult:
    """Stream ``inputs`` through ``spec.compute`` into ``out_path``: rows appended to
    ``OUT.partial`` as each batch finishes, resumable, sharded, under the output's lock."""
    make_parent(out_path)
    kept = f"the rows written so far are in {out_path}.partial; free space, then --resume"
    with output_lock(out_path), naming_output(out_path, kept):
        remove_stale_temporaries(out_path)
        return _write_table(spec, inputs, out_path, options, started, device, recipe, shard,
                            resume, overwrite, progress)


def _write_table(spec: TableSpec, inputs: list[str], out_path: str, options, started: float,
                 device: torch.device, recipe, shard, resume: bool, overwrite: bool, progress
                 ) -> PredictResult:
    """The body of :func:`write_table`, run while holding the output's lock."""
    columns, identity = spec.columns, spec.identity
    batch_size = inference_batch_size(options.batch_size, device)
    partial = f"{out_path}.partial"
    if os.path.exists(out_path) and not overwrite:
        if resume:  # a requeued job whose output is complete: nothing to do, not an error
            check_identity(out_path, out_path, identity)
            logger.info("%s is already complete; nothing to resume", out_path)
            n_rows = count_rows(out_path, options.format)
            return PredictResult(out_path=out_path, n_rows=n_rows, n_ok=0, n_failed=0,
                                 n_skipped_resume=n_rows, elapsed_s=time.monotonic() - started)
        raise PredictError(f"{out_path} already exists; use --overwrite to replace it")
    done: set[str] = set()
    if resume and os.path.exists(partial):
        check_identity(out_path, partial, identity)
        done = done_files(partial, columns)
    elif os.path.exists(partial) and not overwrite:
        raise PredictError(f"{partial} exists from an interrupted run; use --resume to "
                           "continue it or --overwrite to start again")
    if not done:
        write_identity(out_path, identity)

    try:
        sources, _, grouping_problems = collect_sources(inputs, band_pattern=recipe.band_pattern,
                                                        bands=recipe.bands or None)
    except ValueError as exc:
        raise PredictError(str(exc)) from exc
    n_given = len(sources)
    sources = [s for s in sources if in_shard(s.key, shard)]
    grouping_problems = [(p, m) for p, m in grouping_problems
                         if in_shard(canonical_key(p), shard)]
    todo = [s for s in sources if s.key not in done]
    n_skipped = len(sources) - len(todo)
    if not sources and not grouping_problems:
        raise PredictError("no input files" + (f" in shard {shard[0]}/{shard[1]}" if shard
                                               else ""))

    workers = worker_count(options.workers, device=device)
    on_device = (device.type == "cuda" if options.device_stretch is None
                 else options.device_stretch) and DeviceRecipe.supports(recipe)
    to_inputs = _device_inputs(DeviceRecipe(recipe, device)) if on_device else np.stack
    n_ok = 0
    failures: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    advance = progress(len(todo) + len(grouping_problems)) if progress else None
    with open(partial, "a" if done else "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if not done:
            writer.writerow(columns)
        for path, problem in grouping_problems:
            if canonical_key(path) not in done:
                writer.writerow(spec.row("", path, "", "", "", status=f"error: {problem}"))
                failures.append((path, problem))
        batch: list = []

        def flush_batch() -> None:
            nonlocal n_ok
            if not batch:
                return
            values = _computed(spec.compute, to_inputs, [s.image for _, s in batch])
            for position, (source, sample) in enumerate(batch):
                status = f"warning: {sample.warning}" if sample.warning else "ok"
                writer.writerow(spec.row(source.id, source.path_text, sample.hdu, sample.ra,
                                         sample.dec, [v[position] for v in values], status))
                if sample.warning:
                    warnings.append((source.path_text, sample.warning))
            n_ok += len(batch)
            handle.flush()
            if advance:
                advance(len(batch))
            batch.clear()

        tasks = [ReadTask(i, s) for i, s in enumerate(todo)]
        for sample in read_samples(tasks, recipe, workers=workers, raw=on_device,
                                   expected="the model needs",
                                   chunk=max(256, batch_size)):
            source = todo[sample.index]
            if sample.problem:
                flush_batch()  # keep rows in input order
                writer.writerow(spec.row(source.id, source.path_text, sample.hdu, "", "",
                                         status=f"error: {sample.problem}"))
                failures.append((source.path_text, sample.problem))
                if advance:
                    advance(1)
                continue
            batch.append((source, sample))
            if len(batch) >= batch_size:
                flush_batch()
        flush_batch()
        handle.flush()
        os.fsync(handle.fileno())
    spec.finish(partial)
    return PredictResult(out_path=out_path, n_rows=n_ok + len(failures) + n_skipped, n_ok=n_ok,
                         n_failed=len(failures), n_skipped_resume=n_skipped,
                         elapsed_s=time.monotonic() - started, failures=failures,
                         warnings=warnings, n_other_shards=n_given - len(sources))


def _device_inputs(recipe: DeviceRecipe):
    """Raw images -> network inputs on the device: pinned, copied without blocking, and
    preprocessed in one batch per image shape. Returns a list of ``(positions, inputs)``."""
    def inputs(raws: list[np.ndarray]) -> list[tuple[list[int], torch.Tensor]]:
        by_shape: dict[tuple, list[int]] = {}
        for position, raw in enumerate(raws):
            by_shape.setdefault(raw.shape, []).append(position)
        groups = []
        for positions in by_shape.values():
            batch = torch.from_numpy(np.stack([raws[p] for p in positions]))
            if recipe.device.type == "cuda":
                batch = batch.pin_memory()
            groups.append((positions, recipe(batch)))
        return groups

    return inputs


def _computed(compute, to_inputs, images: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """``compute``'s arrays for a batch, in its order, whether inputs are prepared on the CPU
    (one array) or on the device (one tensor per image shape)."""
    inputs = to_inputs(images)
    if not isinstance(inputs, list):
        return tuple(compute(inputs))
    values: list[np.ndarray] = []
    for positions, x in inputs:
        for index, part in enumerate(compute(x)):
            if len(values) <= index:
                values.append(np.zeros((len(images), *part.shape[1:]), dtype=part.dtype))
            values[index][positions] = part
    return tuple(values)
