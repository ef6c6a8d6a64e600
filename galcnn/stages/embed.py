"""``galcnn embed``: one feature vector per cutout, streamed, sharded and resumable as the
predictions are (:func:`galcnn.runner.stream.stream`).

The vector is what the classifier's last layer reads, averaged over the model's symmetry
group (:meth:`galcnn.models.GroupPooled.embed`), so a cutout turned or mirrored within the
group has the same vector. The output is a FITS binary table with a vector column
``embedding``: ``astropy.table.Table.read(OUT)["embedding"]`` is an ``(n, features)`` array;
its header holds ``EMBDIM``, ``SYMMETRY``, the provenance keywords and ``BASEDIR``, the
directory relative file paths start from.

``anomaly=True`` adds each cutout's anomaly score, its mean cosine distance to the nearest
training embeddings kept in the checkpoint, and the score as a percentile of the training
cutouts' own scores (:mod:`galcnn.anomaly`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from galcnn.anomaly import knn_scores, percentile_of
from galcnn.data.inputs import Source
from galcnn.data.reader import Sample
from galcnn.runner.model import LoadedModel, RunError, open_model
from galcnn.runner.provenance import provenance
from galcnn.runner.stream import StreamOptions, StreamResult, stream, table_identity
from galcnn.runner.table import Column, TableSink

__all__ = ["embed", "EmbedOptions", "EmbedError", "EMBED_COLUMNS", "ANOMALY_COLUMNS",
           "embed_columns"]


EmbedError = RunError
"""Nothing can be embedded (bad model, options, inputs or output path); one line."""


@dataclass
class EmbedOptions(StreamOptions):
    anomaly: bool = False
    """Add each cutout's anomaly score and its percentile among the training cutouts'."""


EMBED_COLUMNS = ["id", "file", "hdu", "ra", "dec", "embedding", "status"]
ANOMALY_COLUMNS = ["anomaly", "anomaly_percentile"]
"""Added before ``status`` with ``anomaly=True``."""


def embed_columns(anomaly: bool) -> list[Column]:
    return ([Column("id"), Column("file"), Column("hdu", "int"),
             Column("ra", "float", "deg", ".7f"), Column("dec", "float", "deg", ".7f"),
             Column("embedding", "vector")]
            + ([Column("anomaly", "float"), Column("anomaly_percentile", "float")]
               if anomaly else []) + [Column("status")])


class _Vectors:
    """embed's rows: the pooled feature vector and, with a reference, anomaly scores."""

    def __init__(self, model: LoadedModel, reference: np.ndarray | None):
        self.model, self.reference = model, reference

    def compute(self, x: torch.Tensor) -> tuple[np.ndarray, ...]:
        vectors = self.model.predictor.embeddings(x)
        if self.reference is None:
            return (vectors,)
        card = self.model.card
        scores = knn_scores(self.reference, vectors, card.anomaly["k"])
        return vectors, scores, percentile_of(scores, card.anomaly)

    def row(self, source: Source, sample: Sample, values: list) -> dict:
        scores = dict(zip(ANOMALY_COLUMNS, values[1:]))
        return {"id": source.id, "file": source.path_text, "hdu": sample.hdu, "ra": sample.ra,
                "dec": sample.dec, "embedding": values[0], **scores,
                "status": f"warning: {sample.warning}" if sample.warning else "ok"}


def _width(model: LoadedModel) -> int:
    """Features per embedding, from one pass of an empty input."""
    card = model.card
    x = torch.zeros(1, card.preprocess.n_bands, *card.preprocess.size, device=model.device)
    return int(model.predictor.embeddings(x).shape[1])


def _reference(model: LoadedModel) -> np.ndarray:
    reference = model.extras.get("anomaly_reference")
    if reference is None or not model.card.anomaly:
        raise EmbedError(f"{model.path}: this model keeps no training embeddings to score "
                         "anomalies against (trained before galcnn kept them); retrain it")
    return reference.numpy()


def embed(model_path: str, inputs: list[str], out_path: str,
          options: EmbedOptions | None = None, *,
          progress: Callable[[int], Callable[[int], None]] | None = None,
          **changes) -> StreamResult:
    """Write a FITS table of one feature vector (and with ``anomaly``, its anomaly score) per
    input object of ``inputs``; ``changes`` are fields of :class:`EmbedOptions`."""
    options = replace(options or EmbedOptions(), **changes)
    anomaly = options.anomaly
    model = open_model(model_path, "classify", "embed", device=options.device,
                       amp=options.amp, error=EmbedError)
    reference = _reference(model) if anomaly else None
    recipe = options.recipe(model.card.preprocess)
    identity = table_identity(model, recipe, options.shard, format="embed", anomaly=anomaly)
    meta = provenance(model) + [
        ("EMBDIM", _width(model), "features per embedding"),
        ("SYMMETRY", model.card.symmetry, "group the vectors are averaged over"),
        ("BASEDIR", os.getcwd(), "relative file paths start here"),
        ("RADESYS", "ICRS", "frame of the ra and dec columns")]
    if anomaly:
        meta += [("ANOMK", int(model.card.anomaly["k"]), "anomaly: mean distance to k nearest"),
                 ("ANOMREF", int(model.card.anomaly["n_reference"]),
                  "training embeddings scored against")]
    sink = TableSink(out_path, embed_columns(anomaly), fmt="fits", identity=identity,
                     meta=meta)
    return stream(model, sink, _Vectors(model, reference), inputs, options, recipe=recipe,
                  progress=progress)
