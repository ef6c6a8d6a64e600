"""``galcnn embed``: one feature vector per cutout, streamed, sharded and resumable as in
``predict`` (:func:`galcnn.stages.predict.run.write_table`).

The vector is what the classifier's last layer reads, averaged over the model's symmetry
group (:meth:`galcnn.models.GroupPooled.embed`), so a cutout turned or mirrored within the
group has the same vector. Rows go to ``OUT.partial`` as CSV (the vector as one column of
numbers) and become a FITS binary table with a vector column ``embedding`` when complete:
``astropy.table.Table.read(OUT)["embedding"]`` is an ``(n, features)`` array.

``anomaly=True`` adds each cutout's anomaly score, its mean cosine distance to the nearest
training embeddings kept in the checkpoint, and the score as a percentile of the training
cutouts' own scores (:mod:`galcnn.anomaly`).
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from astropy.io import fits
from astropy.table import Table

from galcnn import __version__
from galcnn.anomaly import knn_scores, percentile_of
from galcnn.checkpoint import file_checksum, load_checkpoint, load_model
from galcnn.data.atomic import atomic_output
from galcnn.data.fitsheader import set_text
from galcnn.inference import Predictor
from galcnn.runtime import select_device
from galcnn.stages.predict.run import (PredictError, PredictOptions, PredictResult, TableSpec,
                                       write_table)

__all__ = ["embed", "EMBED_COLUMNS", "ANOMALY_COLUMNS"]

EMBED_COLUMNS = ["id", "file", "hdu", "ra", "dec", "embedding", "status"]
ANOMALY_COLUMNS = ["anomaly", "anomaly_percentile"]
"""Added before ``status`` with ``anomaly=True``."""


def embed(model_path: str, inputs: list[str], out_path: str,
          options: PredictOptions | None = None, *, shard: tuple[int, int] | None = None,
          resume: bool = False, overwrite: bool = False, hdu: int | str | None = None,
          band_pattern: str | None = None, bands: list[str] | None = None,
          anomaly: bool = False,
          progress: Callable[[int], Callable[[int], None]] | None = None) -> PredictResult:
    """Write a FITS table of one feature vector (and with ``anomaly``, its anomaly score) per
    input object of ``inputs``."""
    started = time.monotonic()
    options = replace(options or PredictOptions(), format="fits")  # always a FITS table
    device = select_device(options.device)
    model = load_model(model_path, device)
    card = model.card
    if card.task != "classify":
        raise PredictError(f"{model_path}: a {card.task} model; embed needs a classifier")
    predictor = Predictor(model, device, amp=options.amp)
    reference = _reference(model_path) if anomaly else None
    recipe = card.preprocess.reading(hdu, band_pattern, bands)
    checksum = file_checksum(model_path)
    identity = {"model_sha256": checksum, "hdu": recipe.hdu, "band_pattern":
                recipe.band_pattern, "bands": list(recipe.bands or []), "format": "embed",
                "anomaly": anomaly, **predictor.identity}
    columns = EMBED_COLUMNS[:-1] + (ANOMALY_COLUMNS if anomaly else []) + ["status"]

    def row(object_id, path, hdu, ra, dec, values=None, status="ok") -> list:
        if values is None:
            return [object_id, path, hdu] + [""] * (len(columns) - 4) + [status]
        coordinate = (lambda v: "" if not np.isfinite(v) else f"{v:.7f}")
        vector = " ".join(f"{v:.6g}" for v in values[0])
        scores = [f"{v:.6g}" for v in values[1:]]
        return [object_id, path, hdu, coordinate(ra), coordinate(dec), vector, *scores, status]

    def compute(x) -> tuple[np.ndarray, ...]:
        vectors = predictor.embeddings(x)
        if reference is None:
            return (vectors,)
        scores = knn_scores(reference, vectors, card.anomaly["k"])
        return vectors, scores, percentile_of(scores, card.anomaly)

    spec = TableSpec(columns=columns, identity=identity, row=row, compute=compute,
                     finish=lambda partial: _finish(partial, out_path, card, checksum))
    return write_table(spec, inputs, out_path, options, device, recipe, started=started,
                       shard=shard, resume=resume, overwrite=overwrite, progress=progress)


def _reference(model_path: str) -> np.ndarray:
    state = load_checkpoint(model_path)
    if "anomaly_reference" not in state or not state["card"].anomaly:
        raise PredictError(f"{model_path}: this model keeps no training embeddings to score "
                           "anomalies against (trained before galcnn kept them); retrain it")
    return state["anomaly_reference"].numpy()


def _finish(partial: str, out_path: str, card, checksum: str) -> None:
    """The complete partial CSV as a FITS table; failed inputs' vectors are NaN."""
    with open(partial, newline="", encoding="utf-8") as handle:
        header_row, *rows = list(csv.reader(handle))
    vectors = [np.array(r[5].split(), dtype=np.float32) if r[5] else None for r in rows]
    width = next((len(v) for v in vectors if v is not None), 0)
    embedding = np.full((len(rows), width), np.nan, dtype=np.float32)
    for index, vector in enumerate(vectors):
        if vector is not None:
            embedding[index] = vector

    def number(text: str) -> float:
        return float(text) if text else np.nan

    table = Table()
    table["id"] = [r[0] for r in rows]
    table["file"] = [r[1] for r in rows]
    table["hdu"] = np.array([int(r[2]) if r[2] not in ("", None) else -1 for r in rows],
                            dtype=np.int16)
    table["ra"] = np.array([number(r[3]) for r in rows])
    table["dec"] = np.array([number(r[4]) for r in rows])
    table["embedding"] = embedding
    for position, name in enumerate(header_row[6:-1], start=6):  # the anomaly columns
        table[name] = np.array([number(r[position]) for r in rows])
    table["status"] = [r[-1] for r in rows]
    header = fits.Header()
    header["GALCNNV"] = (__version__, "galcnn version")
    header["MODELSHA"] = (checksum[:16], "SHA-256 of the model (first 16)")
    header["EMBDIM"] = (width, "features per embedding")
    header["SYMMETRY"] = (card.symmetry, "group the vectors are averaged over")
    if card.anomaly and "anomaly" in table.colnames:
        header["ANOMK"] = (card.anomaly["k"], "anomaly: mean distance to k nearest")
        header["ANOMREF"] = (card.anomaly["n_reference"], "training embeddings scored against")
    hdu = fits.table_to_hdu(table)
    set_text(hdu.header, "BASEDIR", os.getcwd(), "relative file paths start here")
    with atomic_output(out_path) as tmp:
        fits.HDUList([fits.PrimaryHDU(header=header), hdu]).writeto(tmp)
    os.remove(partial)
