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
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS, FITSFixedWarning

from galcnn.attribution import grad_cam, integrated_gradients
from galcnn.data.atomic import atomic_output, make_directory, replace_directory, temporary_path
from galcnn.data.fitsheader import valid_cards, write_cards
from galcnn.data.geometry import fit_to_size
from galcnn.data.inputs import Source, collect_sources
from galcnn.data.lock import new_directory_output
from galcnn.errors import GalcnnError, is_disk_full
from galcnn.plots import plot_attribution
from galcnn.runner.model import LoadedModel, open_model
from galcnn.runner.pipeline import Batch, InputPipeline, Problem, ReadingOverrides
from galcnn.runner.provenance import provenance
from galcnn.runner.table import Column, write_rows

__all__ = ["ExplainOptions", "ExplainResult", "ExplainError", "explain", "INDEX_COLUMNS"]

logger = logging.getLogger("galcnn")

INDEX = [Column("id"), Column("file"), Column("hdu", "int"),
         Column("ra", "float", "deg", ".7f"), Column("dec", "float", "deg", ".7f"),
         Column("class"), Column("belief", "float", "", ".6g"), Column("predicted"),
         Column("fits"), Column("png"), Column("status")]
INDEX_COLUMNS = [column.name for column in INDEX]


class ExplainError(GalcnnError):
    """Nothing can be explained (bad model, class, inputs or output); one line."""


@dataclass
class ExplainOptions(ReadingOverrides):
    target: str | None = None
    """The class the maps are for; None: each cutout's predicted class."""
    steps: int = 32
    """Integrated gradients: steps along the path from an empty image."""
    png: bool = True
    batch_size: int = 16
    device: str = "auto"
    workers: int | None = None
    overwrite: bool = False


@dataclass
class ExplainResult:
    out_dir: str
    n_ok: int
    n_failed: int
    elapsed_s: float
    failures: list[tuple[str, str]] = field(default_factory=list)


def explain(model_path: str, inputs: list[str], out_dir: str,
            options: ExplainOptions | None = None, *,
            progress: Callable[[int], Callable[[int], None]] | None = None,
            **changes) -> ExplainResult:
    """Attribution maps of ``model_path`` for every object in ``inputs`` into ``out_dir``;
    ``changes`` are fields of :class:`ExplainOptions`."""
    started = time.monotonic()
    options = replace(options or ExplainOptions(), **changes)
    if options.steps < 1:
        raise ExplainError(f"integrated gradients need at least 1 step, not {options.steps}")
    model = open_model(model_path, "classify", "explain", device=options.device,
                       error=ExplainError)
    if options.target is not None and options.target not in model.card.classes:
        raise ExplainError(f"unknown class {options.target!r} to explain; the model's classes "
                           f"are {', '.join(model.card.classes)}")
    recipe = options.recipe(model.card.preprocess)
    with new_directory_output(out_dir, options.overwrite, ExplainError):
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
            rows = _explained(_Writer(tmp_dir, model, recipe, options), sources, problems,
                              progress)
            write_rows(os.path.join(tmp_dir, "index.csv"), INDEX, rows, fmt="csv")
            replace_directory(tmp_dir, out_dir, options.overwrite)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    failures = [(row["file"], row["status"][len("error: "):]) for row in rows
                if row["status"].startswith("error")]
    return ExplainResult(out_dir=out_dir, n_ok=len(rows) - len(failures),
                         n_failed=len(failures), elapsed_s=time.monotonic() - started,
                         failures=failures)


def _explained(writer: "_Writer", sources: list[Source], problems: list[tuple[str, str]],
               progress) -> list[dict]:
    """The index rows of every input, in input order: maps written, or why not."""
    rows = [_row("", path, status=f"error: {problem}") for path, problem in problems]
    advance = progress(len(sources) + len(problems)) if progress else (lambda n: None)
    advance(len(problems))
    pipeline = InputPipeline(writer.recipe, writer.model.device, writer.options.batch_size,
                             workers=writer.options.workers, on_device=False)
    for event in pipeline.events(sources):
        if isinstance(event, Problem):
            rows.append(_row(event.source.id, event.source.path_text, event.sample.hdu,
                             status=f"error: {event.sample.problem}"))
            advance(1)
            continue
        rows += writer.write(event)
        advance(len(event))
    return rows


def _row(id_: str, path: str, hdu="", ra=None, dec=None, *, status: str, **values) -> dict:
    return {"id": id_, "file": path, "hdu": hdu, "ra": ra, "dec": dec, "status": status,
            **values}


class _Writer:
    """Maps for batches of read samples, written as FITS and PNG files."""

    def __init__(self, out_dir: str, model: LoadedModel, recipe, options: ExplainOptions):
        self.out_dir, self.model, self.recipe, self.options = out_dir, model, recipe, options
        self.classes = model.card.classes
        self.names: set[str] = set()

    def write(self, batch: Batch) -> list[dict]:
        """The rows of a batch: each input's maps written, or its error (one input's failed
        write costs that input only)."""
        (_, x), = batch.groups
        beliefs = batch.apply(lambda x: (self.model.predictor.beliefs(x)[0],))[0]
        predicted = beliefs.argmax(1)
        target = (predicted if self.options.target is None
                  else np.full(len(batch), self.classes.index(self.options.target)))
        target_t = torch.as_tensor(target, device=x.device)
        cams = grad_cam(self.model.model, x, target_t).cpu().numpy()
        gradients = integrated_gradients(self.model.model, x, target_t,
                                         steps=self.options.steps).sum(1).cpu().numpy()
        rows = []
        for i, (source, sample) in enumerate(batch.items):
            try:
                rows.append(self._outputs(source, sample, {"GRADCAM": cams[i],
                                                           "INTGRAD": gradients[i]},
                                          int(target[i]), beliefs[i]))
            except (ValueError, OSError) as exc:
                if is_disk_full(exc):
                    raise
                rows.append(_row(source.id, source.path_text, sample.hdu,
                                 status=f"error: could not write its maps ({exc})"))
        return rows

    def _outputs(self, source: Source, sample, maps: dict, target: int,
                 beliefs: np.ndarray) -> dict:
        name = self._name(source.relative)
        header = _input_header(source.paths[0], sample.hdu)
        predicted = int(beliefs.argmax())
        self._fits(os.path.join(self.out_dir, f"{name}.fits"), header, maps, target, beliefs,
                   provenance(self.model, source.paths[0], sample.hdu))
        png = ""
        if self.options.png:
            png = f"{name}.png"
            plot_attribution(sample.image, maps["GRADCAM"], maps["INTGRAD"], beliefs,
                             self.classes, target, source.id, os.path.join(self.out_dir, png))
        return _row(source.id, source.path_text, sample.hdu, sample.ra, sample.dec,
                    status=f"warning: {sample.warning}" if sample.warning else "ok",
                    **{"class": self.classes[target], "belief": float(beliefs[target]),
                       "predicted": self.classes[predicted], "fits": f"{name}.fits",
                       "png": png})

    def _name(self, relative: str) -> str:
        """A file name for an object: its path below the input folder, flattened."""
        name = re.sub(r"[^\w.+-]", "_", relative.replace(os.sep, "__")) or "object"
        unique, n = name, 1
        while unique in self.names:
            n += 1
            unique = f"{name}-{n}"
        self.names.add(unique)
        return unique

    def _fits(self, path: str, header: fits.Header, maps: dict[str, np.ndarray], target: int,
              beliefs: np.ndarray, cards: list) -> None:
        """Maps on the input's pixel grid (the recipe's crop or resize undone)."""
        native = (int(header.get("NAXIS2", 0)), int(header.get("NAXIS1", 0)))
        primary = fits.PrimaryHDU(header=_without_data_keywords(header))
        write_cards(primary.header, cards + [
            ("CLASS", self.classes[target], "class the maps are for"),
            ("PREDICT", self.classes[int(beliefs.argmax())], "predicted class")]
            + [(f"P{i}", float(b), f"belief in {self.classes[i]}") for i, b in
               enumerate(beliefs)])
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
