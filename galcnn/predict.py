"""``galcnn predict``: calibrated class beliefs for any number of cutouts, as a pipeline stage.

Inputs are read through the same recipe as ``prepare`` with the options recorded in the model
card, in parallel worker processes, with at most two chunks in flight, so memory stays bounded.
Rows are appended to ``OUT.partial`` and flushed as each batch finishes; the file is renamed to
``OUT`` only when every input has a row. ``resume=True`` keeps the complete rows of a partial
file (a torn last line is cut off) and skips their inputs. A file that cannot be used gets a
row whose ``status`` says why; it never stops the run.

Columns, in this order: ``id, file, hdu, ra, dec, predicted, p_<class>... , confidence,
entropy, spread, status``.
"""

from __future__ import annotations

import csv
import logging
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from galcnn.checkpoint import file_checksum, load_model
from galcnn.inputs import Source, expand_inputs, group_bands, sources_from_files
from galcnn.prepare import PrepareOptions, default_workers, stream_samples
from galcnn.runtime import amp_dtype, autocast, select_device

__all__ = ["PredictOptions", "PredictResult", "PredictError", "predict", "parse_shard",
           "shard_from_env", "in_shard", "columns_for", "FORMATS"]

logger = logging.getLogger("galcnn")

FORMATS = ("csv", "fits")


class PredictError(ValueError):
    """Nothing can be predicted (bad model, options or output path); one line."""


@dataclass
class PredictOptions:
    batch_size: int = 256
    tta: bool = False
    mc_dropout: int = 0
    device: str = "auto"
    workers: int | None = None
    amp: bool = True
    format: str = "csv"


@dataclass
class PredictResult:
    out_path: str
    n_rows: int
    n_ok: int
    n_failed: int
    n_skipped_resume: int
    elapsed_s: float
    failures: list[tuple[str, str]] = field(default_factory=list)


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` (1-based K) -> (K, N)."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise PredictError(f"--shard {text!r}: write K/N, e.g. 3/10") from None
    if not 1 <= k <= n:
        raise PredictError(f"--shard {text!r}: K must be between 1 and N")
    return k, n


def shard_from_env(environ: dict | None = None) -> tuple[int, int] | None:
    """The shard of a Slurm array task: (task id - min + 1, task count), or None."""
    env = os.environ if environ is None else environ
    if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
        return None
    task = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
    return task + 1, int(env["SLURM_ARRAY_TASK_COUNT"])


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Stable rule: CRC-32 of the input's path modulo N; independent of listing order."""
    if shard is None:
        return True
    k, n = shard
    return zlib.crc32(key.encode("utf-8")) % n == k - 1


def columns_for(classes: list[str]) -> list[str]:
    return (["id", "file", "hdu", "ra", "dec", "predicted"] + [f"p_{c}" for c in classes]
            + ["confidence", "entropy", "spread", "status"])


def _sources(inputs: list[str], card: dict, band_pattern: str | None, bands: list[str] | None
             ) -> tuple[list[Source], list[tuple[str, str]]]:
    try:
        pairs = expand_inputs(inputs)
    except ValueError as exc:
        raise PredictError(str(exc)) from exc
    pattern = band_pattern or card.get("band_pattern")
    if pattern:
        try:
            sources, _, problems = group_bands(pairs, pattern, bands or card.get("bands"))
        except ValueError as exc:
            raise PredictError(str(exc)) from exc
        return sources, problems
    return sources_from_files(pairs), []


def _resume_rows(partial: str, columns: list[str]) -> set[str]:
    """Files already done in a partial output; a torn last line is cut off."""
    with open(partial, "rb") as handle:
        content = handle.read()
    complete = content[: content.rfind(b"\n") + 1]
    if len(complete) != len(content):
        with open(partial, "r+b") as handle:
            handle.truncate(len(complete))
    lines = complete.decode("utf-8").splitlines()
    if not lines:
        return set()
    if next(csv.reader([lines[0]])) != columns:
        raise PredictError(f"{partial}: written by another model or galcnn version (columns "
                           "differ); remove it or write to another output")
    return {row["file"] for row in csv.DictReader(lines)}


def _count_rows(path: str, fmt: str) -> int:
    if fmt == "fits":
        from astropy.io import fits

        return int(fits.getheader(path, 1)["NAXIS2"])
    with open(path, encoding="utf-8") as handle:
        return max(0, sum(1 for _ in handle) - 1)


def _beliefs(model, x: torch.Tensor, temperature: float, tta: bool, mc_dropout: int,
             device: torch.device, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Mean calibrated beliefs and the spread of the winning class over TTA / MC samples."""
    runs = []
    for _ in range(max(1, mc_dropout)):
        with autocast(device, dtype):
            logits = model.per_element(x) if tta else model(x, pooled=False)[None]
        runs.append(torch.softmax(logits.float() / temperature, dim=-1))
    probs = torch.cat(runs)  # (samples, batch, classes)
    mean = probs.mean(0)
    if probs.shape[0] > 1:
        winner = mean.argmax(1)
        spread = probs[:, torch.arange(len(winner)), winner].std(0)
    else:
        spread = torch.full((mean.shape[0],), float("nan"))
    return mean.cpu().numpy(), spread.cpu().numpy()


def _enable_mc_dropout(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.train()


def _format_row(outcome_id: str, path: str, hdu, ra, dec, classes, probs=None, spread=None,
                status="ok") -> list:
    if probs is None:
        return [outcome_id, path, hdu, "", "", ""] + [""] * len(classes) + ["", "", "", status]
    entropy = float(-(probs * np.log(np.clip(probs, 1e-12, 1))).sum())
    coordinate = (lambda v: "" if not np.isfinite(v) else f"{v:.7f}")
    return ([outcome_id, path, hdu, coordinate(ra), coordinate(dec), classes[int(probs.argmax())]]
            + [f"{p:.6f}" for p in probs]
            + [f"{probs.max():.6f}", f"{entropy:.6f}",
               "" if not np.isfinite(spread) else f"{spread:.6f}", status])


def predict(model_path: str, inputs: list[str], out_path: str,
            options: PredictOptions | None = None, *, shard: tuple[int, int] | None = None,
            resume: bool = False, overwrite: bool = False, hdu: int | str | None = None,
            band_pattern: str | None = None, bands: list[str] | None = None,
            progress: Callable[[int], Callable[[int], None]] | None = None) -> PredictResult:
    """Write one row per input object of ``inputs`` (files, directories, globs, ``@lists``)."""
    started = time.monotonic()
    options = options or PredictOptions()
    if options.format not in FORMATS:
        raise PredictError(f"unknown format {options.format!r}; choose {', '.join(FORMATS)}")
    device = select_device(options.device)
    model, card = load_model(model_path, device)
    if card.get("task", "classify") != "classify":
        raise PredictError(f"{model_path}: a {card.get('task')} model; use 'galcnn segment'")
    model = model.to(memory_format=torch.channels_last)
    if options.mc_dropout:
        _enable_mc_dropout(model)
    classes = card["classes"]
    columns = columns_for(classes)
    temperature = float(card.get("temperature", 1.0))
    dtype = amp_dtype(device, options.amp)

    partial = f"{out_path}.partial"
    if os.path.exists(out_path) and not overwrite:
        if resume:  # a requeued job whose output is complete: nothing to do, not an error
            logger.info("%s is already complete; nothing to resume", out_path)
            n_rows = _count_rows(out_path, options.format)
            return PredictResult(out_path=out_path, n_rows=n_rows, n_ok=0, n_failed=0,
                                 n_skipped_resume=n_rows, elapsed_s=time.monotonic() - started)
        raise PredictError(f"{out_path} already exists; use --overwrite to replace it")
    done: set[str] = set()
    if resume and os.path.exists(partial):
        done = _resume_rows(partial, columns)
    elif os.path.exists(partial) and not overwrite:
        raise PredictError(f"{partial} exists from an interrupted run; use --resume to "
                           "continue it or --overwrite to start again")

    sources, grouping_problems = _sources(inputs, card, band_pattern, bands)
    sources = [s for s in sources if in_shard(s.path_text, shard)]
    grouping_problems = [(p, m) for p, m in grouping_problems if in_shard(p, shard)]
    todo = [s for s in sources if s.path_text not in done]
    n_skipped = len(sources) - len(todo)
    if not sources and not grouping_problems:
        raise PredictError("no input files" + (f" in shard {shard[0]}/{shard[1]}" if shard
                                               else ""))

    prep = PrepareOptions.from_dict(card.get("prepare", {}), size=tuple(card["size"]),
                                    augment="none", copies=0, val_fraction=0.0,
                                    test_fraction=0.0, **({"hdu": hdu} if hdu is not None
                                                          else {}))
    workers = options.workers or max(1, default_workers() - (1 if device.type == "cpu" else 0))
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    mode = "a" if done else "w"
    n_ok = n_failed = 0
    failures: list[tuple[str, str]] = []
    advance = progress(len(todo) + len(grouping_problems)) if progress else None
    with open(partial, mode, newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if mode == "w":
            writer.writerow(columns)
        for path, problem in grouping_problems:
            if path not in done:
                writer.writerow(_format_row("", path, "", "", "", classes,
                                            status=f"error: {problem}"))
                failures.append((path, problem))
        batch: list = []

        def flush_batch() -> None:
            nonlocal n_ok
            if not batch:
                return
            x = torch.from_numpy(np.stack([o.samples[0][0] for _, o in batch]).astype(
                np.float32))
            if device.type == "cuda":
                x = x.pin_memory()
            x = x.to(device, non_blocking=True)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                probs, spread = _beliefs(model, x, temperature, options.tta, options.mc_dropout,
                                         device, dtype)
            for (source, outcome), p, s in zip(batch, probs, spread):
                writer.writerow(_format_row(source.id, source.path_text, outcome.hdu,
                                            outcome.ra, outcome.dec, classes, p, s))
            n_ok += len(batch)
            handle.flush()
            if advance:
                advance(len(batch))
            batch.clear()

        for outcome in stream_samples(todo, prep, tuple(card["size"]), int(card["n_bands"]),
                                      workers, chunk=max(64, options.batch_size)):
            source = todo[outcome.index]
            if outcome.problem:
                flush_batch()  # keep rows in input order
                writer.writerow(_format_row(source.id, source.path_text, outcome.hdu, "", "",
                                            classes, status=f"error: {outcome.problem}"))
                failures.append((source.path_text, outcome.problem))
                if advance:
                    advance(1)
                continue
            batch.append((source, outcome))
            if len(batch) >= options.batch_size:
                flush_batch()
        flush_batch()
        handle.flush()
        os.fsync(handle.fileno())
    n_failed = len(failures)
    n_rows = n_ok + n_failed + n_skipped
    _finish(partial, out_path, options.format, card, model_path)
    return PredictResult(out_path=out_path, n_rows=n_rows, n_ok=n_ok, n_failed=n_failed,
                         n_skipped_resume=n_skipped, elapsed_s=time.monotonic() - started,
                         failures=failures)


def _finish(partial: str, out_path: str, fmt: str, card: dict, model_path: str) -> None:
    """Rename the complete CSV into place, or convert it to a FITS table with provenance."""
    if fmt == "csv":
        os.replace(partial, out_path)
        return
    from astropy.io import fits
    from astropy.io.ascii import convert_numpy
    from astropy.table import Table

    ascii_str = convert_numpy(str)

    from galcnn import __version__

    numeric = {name for name in columns_for(card["classes"])
               if name.startswith("p_") or name in ("ra", "dec", "confidence", "entropy", "spread")}
    raw = Table.read(partial, format="ascii.csv", guess=False, fast_reader=False,
                     converters={name: [ascii_str] for name in ("id", "file", "predicted",
                                                                "status")})
    table = Table()
    for name in raw.colnames:
        column = raw[name]
        if name == "hdu":
            table[name] = np.ma.filled(np.ma.asarray(column, dtype=np.float64), -1).astype(
                np.int16)
        elif name in numeric:
            table[name] = np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)
        else:
            table[name] = np.ma.filled(column.astype(str), "")
    header = fits.Header()
    header["GALCNNV"] = (__version__, "galcnn version")
    header["MODELSHA"] = (file_checksum(model_path)[:16], "SHA-256 of the model (first 16)")
    header["CLASSES"] = (",".join(card["classes"]), "classes of the p_ columns")
    header["TEMPERAT"] = (float(card.get("temperature", 1.0)), "calibration temperature")
    tmp = f"{out_path}.tmp.fits"
    fits.HDUList([fits.PrimaryHDU(header=header),
                  fits.table_to_hdu(table)]).writeto(tmp, overwrite=True)
    os.replace(tmp, out_path)
    os.remove(partial)

