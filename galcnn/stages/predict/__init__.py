"""``galcnn predict``: a table of calibrated class beliefs, one row per input object.

``table``  columns, rows, resuming a partial table, FITS output
``run``    :func:`predict`: streaming, batching, sharding, resume
"""

from galcnn.stages.predict.run import PredictError, PredictOptions, PredictResult, predict
from galcnn.stages.predict.table import columns_for

__all__ = ["predict", "PredictOptions", "PredictResult", "PredictError", "columns_for"]
