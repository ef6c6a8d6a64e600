"""``galcnn embed``: one feature vector per cutout, streamed, sharded and resumable as in
``predict`` (:func:`galcnn.stages.predict.run.write_table`).

The vector is what the classifier's last layer reads, averaged over the model's symmetry
group (:meth:`galcnn.models.GroupPooled.embed`), so a cutout turned or mirrored within the
group has the same vector. Rows go to ``OUT.partial`` as CSV (the vector as one column of
numbers) and become a FITS binary table with a vector column ``embedding`` when complete:
``astropy.table.Table.read(OUT)["embedding"]`` is an ``(n, features)`` array.
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
from galcnn.checkpoint import file_checksum, load_model
from galcnn.data.atomic import atomic_output
from galcnn.inference import Predictor
from galcnn.runtime import select_device
from galcnn.stages.predict.run import (PredictError, PredictOptions, PredictResult, TableSpec,
                                       write_table)

__all__ = ["embed", "EMBED_COLUMNS"]

EMBED_COLUMNS = ["id", "file", "hdu", "ra", "dec", "embedding", "status"]


def embed(model_path: str, inputs: list[str], out_path: str,
          options: PredictOptions | None = None, *, shard: tuple[int, int] | None = None,
          resume: bool = False, overwrite: bool = False, hdu: int | str | None = None,
          band_pattern: str | None = None, bands: list[str] | None = None,
          progress: Callable[[int], Callable[[int], None]] | None = None) -> PredictResult:
    """Write a FITS table of one feature vector per input object of ``inputs``."""
    started = time.monotonic()
    options = replace(options or PredictOptions(), format="fits")  # always a FITS table
    device = select_device(options.device)
    model = load_model(model_path, device)
    card = model.card
    if card.task != "classify":
        raise PredictError(f"{model_path}: a {card.task} model; embed needs a classifier")
    predictor = Predictor(model, device, amp=options.amp)
    overrides = {"hdu": hdu, "band_pattern": band_pattern, "bands": bands}
    recipe = replace(card.preprocess, **{k: v for k, v in overrides.items() if v is not None})
    checksum = file_checksum(model_path)
    identity = {"model_sha256": checksum, "hdu": recipe.hdu, "band_pattern":
                recipe.band_pattern, "bands": list(recipe.bands or []), "format": "embed"}

    def row(object_id, path, hdu, ra, dec, values=None, status="ok") -> list:
        if values is None:
            return [object_id, path, hdu, "", "", "", status]
        coordinate = (lambda v: "" if not np.isfinite(v) else f"{v:.7f}")
        vector = " ".join(f"{v:.6g}" for v in values[0])
        return [object_id, path, hdu, coordinate(ra), coordinate(dec), vector, status]

    spec = TableSpec(columns=EMBED_COLUMNS, identity=identity, row=row,
                     compute=lambda x: (predictor.embeddings(x),),
                     finish=lambda partial: _finish(partial, out_path, card, checksum))
    return write_table(spec, inputs, out_path, options, device, recipe, started=started,
                       shard=shard, resume=resume, overwrite=overwrite, progress=progress)


def _finish(partial: str, out_path: str, card, checksum: str) -> None:
    """The complete partial CSV as a FITS table; failed inputs' vectors are NaN."""
    with open(partial, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
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
    table["status"] = [r[6] for r in rows]
    header = fits.Header()
    header["GALCNNV"] = (__version__, "galcnn version")
    header["MODELSHA"] = (checksum[:16], "SHA-256 of the model (first 16)")
    header["EMBDIM"] = (width, "features per embedding")
    header["SYMMETRY"] = (card.symmetry, "group the vectors are averaged over")
    with atomic_output(out_path) as tmp:
        fits.HDUList([fits.PrimaryHDU(header=header), fits.table_to_hdu(table)]).writeto(tmp)
    os.remove(partial)
