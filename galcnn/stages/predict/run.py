"""``galcnn predict``: calibrated class beliefs for any number of cutouts, as a pipeline stage.

The model is opened once (:func:`galcnn.runner.model.open_model`) and inputs stream through
it into a table (:func:`galcnn.runner.stream.stream`): read through the model card's recipe
in worker processes with bounded memory, run through the model pooled over its symmetry group
(the model that training validated), written to ``OUT.partial`` as each batch finishes and
renamed (or made a FITS table) when every input has a row; ``resume=True`` keeps the complete
rows and skips their inputs. A file that cannot be used gets a row whose ``status`` says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from galcnn.choices import TABLE_FORMATS, unknown_choice
from galcnn.data.inputs import Source
from galcnn.data.reader import Sample
from galcnn.runner.model import LoadedModel, RunError, open_model
from galcnn.runner.provenance import provenance
from galcnn.runner.stream import StreamOptions, StreamResult, stream, table_identity
from galcnn.runner.table import TableSink
from galcnn.stages.predict.table import belief_row, prediction_columns

__all__ = ["PredictOptions", "PredictResult", "PredictError", "predict"]


PredictError = RunError
"""Nothing can be predicted (bad model, options, inputs or output path); one line."""


PredictResult = StreamResult


@dataclass
class PredictOptions(StreamOptions):
    spread: bool = False
    """Add the spread of beliefs across the group's copies (the beliefs do not change)."""
    mc_dropout: int = 0
    format: str = "csv"


class _Beliefs:
    """predict's rows: calibrated beliefs, their class, entropy and spread."""

    def __init__(self, model: LoadedModel, spread: bool):
        self.model, self.spread = model, spread
        self.classes = list(model.card.classes)

    def compute(self, x: torch.Tensor) -> tuple[np.ndarray, ...]:
        return self.model.predictor.beliefs(x, spread=self.spread)

    def row(self, source: Source, sample: Sample, values: list) -> dict:
        probs, spread = values
        return {"id": source.id, "file": source.path_text, "hdu": sample.hdu, "ra": sample.ra,
                "dec": sample.dec, **belief_row(self.classes, probs, spread),
                "status": f"warning: {sample.warning}" if sample.warning else "ok"}


def predict(model_path: str, inputs: list[str], out_path: str,
            options: PredictOptions | None = None, *,
            progress: Callable[[int], Callable[[int], None]] | None = None,
            **changes) -> PredictResult:
    """Write one row per input object of ``inputs`` (files, directories, globs, ``@lists``);
    ``changes`` are fields of :class:`PredictOptions` (``predict(run, inputs, out,
    resume=True)``)."""
    options = replace(options or PredictOptions(), **changes)
    if options.format not in TABLE_FORMATS:
        raise PredictError(unknown_choice("format", options.format, TABLE_FORMATS))
    model = open_model(model_path, "classify", "predict", device=options.device,
                       amp=options.amp, mc_dropout=options.mc_dropout, error=PredictError)
    recipe = options.recipe(model.card.preprocess)
    identity = table_identity(model, recipe, options.shard, classes=list(model.card.classes),
                           mc_dropout=options.mc_dropout, spread=options.spread,
                           format=options.format)
    meta = provenance(model) + [("TEMPERAT", float(model.card.temperature),
                                 "calibration temperature"),
                                ("RADESYS", "ICRS", "frame of the ra and dec columns")]
    sink = TableSink(out_path, prediction_columns(model.card.classes), fmt=options.format,
                     identity=identity, meta=meta)
    return stream(model, sink, _Beliefs(model, options.spread), inputs, options,
                  recipe=recipe, progress=progress)
