"""``galcnn explain``: where in each cutout a classifier found its class.

For every input the model's beliefs and two attribution maps for one class (the predicted
one, or ``target``): Grad-CAM on the last feature block and integrated gradients
(:mod:`galcnn.attribution`), both through the pooled model that ``predict`` runs. Each input
gives ``ID.fits`` (the maps on the input's own pixel grid, one image HDU each, with the
input's celestial WCS; the input header in the primary HDU) and ``ID.png`` (the network's
input, the Grad-CAM overlay, the integrated gradients, the beliefs) for a person to look
at; ``index.csv`` lists every input, what was written and, for a file that could not be
used, why. The directory is written under a temporary name and appears only when complete.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS, FITSFixedWarning

from galcnn.attribution import grad_cam, integrated_gradients
from galcnn.checkpoint import file_checksum, load_model
from galcnn.data.atomic import (atomic_output, make_directory, replace_directory,
                                temporary_path, write_csv)
from galcnn.data.fitsheader import header_text, set_text, valid_cards
from galcnn.data.geometry import fit_to_size
from galcnn.data.inputs import collect_sources
from galcnn.data.lock import new_directory_output
from galcnn.data.reader import ReadTask, read_samples
from galcnn.errors import GalcnnError
from galcnn.inference import as_batch, forward
from galcnn.plots import plot_attribution
from galcnn.runtime import select_device, worker_count

__all__ = ["ExplainOptions", "ExplainResult", "ExplainError", "explain", "INDEX_COLUMNS"]

logger = logging.getLogger("galcnn")

INDEX_COLUMNS = ["id", "file", "hdu", "ra", "dec", "class", "belief", "predicted", "fits", "png",
                 "status"]


class ExplainError(GalcnnError):
    """Nothing can be explained (bad model, class, inputs or output); one line."""


@dataclass
class ExplainOptions:
    target: str | None = None
    """The class the maps are for; None: each cutout's predicted class."""
    steps: int = 32
    """Integrated gradients: steps along the path from an empty image."""
    png: bool = True
    batch_size: int = 16
    device: str = "auto"
    workers: int | None = None


@dataclass
class ExplainResult:
    out_dir: str
    n_ok: int
    n_failed: int
    elapsed_s: float
    failures: list[tuple[str, str]] = field(default_factory=list)


def explain(model_path: str, inputs: list[str], out_dir: str,
            options: ExplainOptions | None = None, *, overwrite: bool = False,
            hdu: int | str | None = None, band_pattern: str | None = None,
            bands: list[str] | None = None,
            progress: Callable[[int], Callable[[int], None]] | None = None) -> ExplainResult:
    """Attribution maps of ``model_path`` for every object in ``inputs`` into ``out_dir``."""
    started = time.monotonic()
    options = options or ExplainOptions()
    if options.steps < 1:
        raise ExplainError("--steps must be at least 1")
    device = select_device(options.device)
    model = load_model(model_path, device)
    card = model.card
    if card.task != "classify":
        raise ExplainError(f"{model_path}: a {card.task} model; explain needs a classifier")
    if options.target is not None and options.target not in card.classes:
        raise ExplainError(f"unknown --class {options.target!r}; the model's classes are "
                           f"{', '.join(card.classes)}")
    recipe = card.preprocess.reading(hdu, band_pattern, bands)
    with new_directory_output(out_dir, overwrite, ExplainError):
        try:
            sources, _, problems = collect_sources(inputs, band_pattern=recipe.band_pattern,
                                                   bands=recipe.bands or None)
        except ValueError as exc:
            raise ExplainError(str(exc)) from exc
        if not sources and not problems:
            raise ExplainError("no input files")
        tmp_dir = temporary_path(out_dir)
        make_directory(tmp_dir)
        try:
            writer = _Writer(tmp_dir, model, recipe, options, file_checksum(model_path))
            rows = [_row("", path, status=f"error: {problem}") for path, problem in problems]
            advance = progress(len(sources) + len(problems)) if progress else None
            if advance and problems:
                advance(len(problems))
            batch: list = []
            tasks = [ReadTask(i, s) for i, s in enumerate(sources)]
            for sample in read_samples(tasks, recipe, workers=worker_count(options.workers,
                                                                           device=device),
                                       expected="the model needs"):
                if sample.problem:
                    rows += writer.write(batch)  # keep rows in input order
                    batch.clear()
                    rows.append(_row(sources[sample.index].id, sources[sample.index].path_text,
                                     sample.hdu, status=f"error: {sample.problem}"))
                else:
                    batch.append((sources[sample.index], sample))
                if len(batch) >= options.batch_size:
                    rows += writer.write(batch)
                    batch.clear()
                if advance:
                    advance(1)
            rows += writer.write(batch)
            write_csv(os.path.join(tmp_dir, "index.csv"), INDEX_COLUMNS,
                      [[row[c] for c in INDEX_COLUMNS] for row in rows])
            replace_directory(tmp_dir, out_dir, overwrite)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    failures = [(row["file"], row["status"][len("error: "):]) for row in rows
                if row["status"].startswith("error")]
    return ExplainResult(out_dir=out_dir, n_ok=len(rows) - len(failures),
                         n_failed=len(failures), elapsed_s=time.monotonic() - started,
                         failures=failures)


def _row(id_: str, path: str, hdu="", ra="", dec="", *, status: str, **values) -> dict:
    return {"id": id_, "file": path, "hdu": hdu, "ra": ra, "dec": dec, "class": "",
            "belief": "", "predicted": "", "fits": "", "png": "", "status": status, **values}


class _Writer:
    """Maps for batches of read samples, written as FITS and PNG files."""

    def __init__(self, out_dir: str, model, recipe, options: ExplainOptions, checksum: str):
        self.out_dir, self.model, self.recipe, self.options = out_dir, model, recipe, options
        self.checksum = checksum
        self.classes = model.card.classes
        self.names: set[str] = set()

    def write(self, batch: list) -> list[dict]:
        if not batch:
            return []
        card, device = self.model.card, next(self.model.parameters()).device
        x = as_batch(np.stack([sample.image for _, sample in batch]), device)
        beliefs = torch.softmax(forward(self.model, x) / card.temperature, dim=1).cpu().numpy()
        predicted = beliefs.argmax(1)
        target = (predicted if self.options.target is None
                  else np.full(len(batch), self.classes.index(self.options.target)))
        target_t = torch.as_tensor(target, device=device)
        cams = grad_cam(self.model, x, target_t).cpu().numpy()
        gradients = integrated_gradients(self.model, x, target_t, steps=self.options.steps)
        gradients = gradients.sum(1).cpu().numpy()  # over bands: one map per input
        rows = []
        for i, (source, sample) in enumerate(batch):
            name = self._name(source.relative)
            header = _input_header(source.paths[0], sample.hdu)
            maps = {"GRADCAM": cams[i], "INTGRAD": gradients[i]}
            self._fits(os.path.join(self.out_dir, f"{name}.fits"), header, maps,
                       self.classes[target[i]], beliefs[i], self.classes[predicted[i]])
            png = ""
            if self.options.png:
                png = f"{name}.png"
                plot_attribution(sample.image, cams[i], gradients[i], beliefs[i], self.classes,
                                 int(target[i]), f"{source.id}",
                                 os.path.join(self.out_dir, png))
            status = f"warning: {sample.warning}" if sample.warning else "ok"
            rows.append(_row(source.id, source.path_text, sample.hdu, sample.ra, sample.dec,
                             status=status, **{"class": self.classes[target[i]],
                                               "belief": f"{beliefs[i][target[i]]:.6g}",
                                               "predicted": self.classes[predicted[i]],
                                               "fits": f"{name}.fits", "png": png}))
        return rows

    def _name(self, relative: str) -> str:
        """A file name for an object: its path below the input folder, flattened."""
        name = re.sub(r"[^A-Za-z0-9._+-]", "_", relative.replace(os.sep, "__")) or "object"
        unique, n = name, 1
        while unique in self.names:
            n += 1
            unique = f"{name}-{n}"
        self.names.add(unique)
        return unique

    def _fits(self, path: str, header: fits.Header, maps: dict[str, np.ndarray], target: str,
              beliefs: np.ndarray, predicted: str) -> None:
        """Maps on the input's pixel grid (the recipe's crop or resize undone)."""
        native = (int(header.get("NAXIS2", 0)), int(header.get("NAXIS1", 0)))
        primary = fits.PrimaryHDU(header=_without_data_keywords(header))
        set_text(primary.header, "CLASS", target, "class the maps are for")
        set_text(primary.header, "PREDICT", predicted, "predicted class")
        set_text(primary.header, "CLASSES", ",".join(self.classes))
        for index, belief in enumerate(beliefs):
            primary.header[f"P{index}"] = (float(belief),
                                           header_text(f"belief in {self.classes[index]}"))
        primary.header["MODELSHA"] = (self.checksum[:16], "model checksum (sha256, first 16)")
        hdus = [primary]
        celestial = _celestial_header(header)
        for name, values in maps.items():
            on_grid = (fit_to_size(values[None].astype(np.float32), native, fit=self.recipe.fit,
                                   pad_values=[np.nan])[0] if all(native) else values)
            hdus.append(fits.ImageHDU(on_grid.astype(np.float32), header=celestial, name=name))
        with atomic_output(path) as tmp:
            fits.HDUList(hdus).writeto(tmp)


def _input_header(path: str, hdu: int) -> fits.Header:
    with warnings.catch_warnings(), fits.open(path, memmap=False) as hdus:
        warnings.simplefilter("ignore", AstropyWarning)  # its malformed cards: left out
        return valid_cards(hdus[hdu if isinstance(hdu, int) and hdu >= 0 else 0].header)


def _without_data_keywords(header: fits.Header) -> fits.Header:
    kept = valid_cards(header)
    kept.strip()  # structural keywords (SIMPLE, BITPIX, NAXISn, ...) belong to each HDU
    for key in ("BSCALE", "BZERO", "BLANK", "XTENSION", "EXTNAME"):
        kept.remove(key, ignore_missing=True, remove_all=True)
    return kept


def _celestial_header(header: fits.Header) -> fits.Header:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header)
        except Exception:  # noqa: BLE001  an unreadable WCS: maps without one
            return fits.Header()
    return wcs.celestial.to_header() if wcs.has_celestial else fits.Header()
