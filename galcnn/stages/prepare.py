"""``galcnn prepare``: FITS cutouts in, a memory-mappable training set out.

The work is :func:`galcnn.runner.training_set.prepare`, in the runner layer because ``train``
runs it too, on raw cutouts given as ``--data``.
"""

from galcnn.runner.training_set import PrepareError, PrepareOptions, PrepareResult, prepare

__all__ = ["PrepareOptions", "PrepareResult", "PrepareError", "prepare"]
