"""Per-object tables from a classifier: ``galcnn predict`` (calibrated class beliefs) and
``galcnn embed`` (feature vectors), one row per input object, streamed the same way.

``table``  the predictions table: columns, rows, resuming a partial one, FITS output
``run``    :func:`predict` and the streaming both share: batching, sharding, resume
``embed``  :func:`embed`: the feature-vector table
"""

from galcnn.stages.predict.embed import EMBED_COLUMNS, embed
from galcnn.stages.predict.run import PredictError, PredictOptions, PredictResult, predict
from galcnn.stages.predict.table import columns_for

__all__ = ["predict", "embed", "PredictOptions", "PredictResult", "PredictError", "columns_for",
           "EMBED_COLUMNS"]
