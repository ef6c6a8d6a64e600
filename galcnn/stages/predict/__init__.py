"""``galcnn predict``: calibrated class beliefs, one row per input object.

``table``  the predictions table's columns and the belief columns of a row
``run``    :func:`predict`: a model opened once, inputs streamed into the table
"""

from galcnn.stages.predict.run import PredictError, PredictOptions, PredictResult, predict
from galcnn.stages.predict.table import columns_for

__all__ = ["predict", "PredictOptions", "PredictResult", "PredictError", "columns_for"]
