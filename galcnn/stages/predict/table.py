"""The predictions table: its columns, declared once, and a row of an input's beliefs.

Columns, in this order: ``id, file, hdu, ra, dec, predicted, p_<class>..., confidence,
entropy, spread, status``; ``ra``/``dec`` in degrees (ICRS), the beliefs and their summaries
dimensionless. Adding a column is one :class:`~galcnn.runner.table.Column` here and its value
in :func:`belief_row`.
"""

from __future__ import annotations

import numpy as np

from galcnn.runner.table import Column

__all__ = ["columns_for", "prediction_columns", "belief_row", "POSITION_COLUMNS"]

#: The columns every per-object table starts with: which input, and where on the sky.
POSITION_COLUMNS = [Column("id"), Column("file"), Column("hdu", "int"),
                    Column("ra", "float", "deg", ".7f"), Column("dec", "float", "deg", ".7f")]


def columns_for(classes: list[str]) -> list[str]:
    """The column names of the predictions table of a model with ``classes``."""
    return [column.name for column in prediction_columns(classes)]


def prediction_columns(classes: list[str]) -> list[Column]:
    return (POSITION_COLUMNS + [Column("predicted")]
            + [Column(f"p_{c}", "float", "", ".6f") for c in classes]
            + [Column("confidence", "float", "", ".6f"), Column("entropy", "float", "", ".6f"),
               Column("spread", "float", "", ".6f"), Column("status")])


def belief_row(classes: list[str], probs: np.ndarray, spread: float) -> dict:
    """The belief columns of one input: its class, each belief, the highest, the entropy
    of the beliefs and their spread across copies (NaN without one)."""
    entropy = float(-(probs * np.log(np.clip(probs, 1e-12, 1))).sum())
    return {"predicted": classes[int(probs.argmax())],
            **{f"p_{c}": float(p) for c, p in zip(classes, probs)},
            "confidence": float(probs.max()), "entropy": entropy, "spread": float(spread)}
