"""The keywords every FITS product of galcnn carries, the same in each.

``GALCNNV`` (version), ``MODELSHA`` (the checkpoint's SHA-256, all 64 hex digits),
``MODEL`` (its path), ``CLASSES`` (the model's classes, in the order of its outputs),
``PRECISN`` (what the numbers were computed in), ``DATE`` (UTC of writing), and for a
product of one input ``SRCFILE`` and ``SRCHDU``. Text values are printable ASCII and long
ones continue over CONTINUE cards with ``LONGSTRN``, so fitsverify accepts every product
whatever its paths (:mod:`galcnn.data.fitsheader`).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from galcnn import __version__
from galcnn.runner.model import LoadedModel

__all__ = ["provenance"]


def provenance(model: LoadedModel, source: str | None = None,
               hdu: int | None = None) -> list[tuple[str, object, str]]:
    """The provenance keywords of a product of ``model`` (of ``source``'s HDU ``hdu``)."""
    cards: list[tuple[str, object, str]] = [
        ("GALCNNV", __version__, "galcnn version"),
        ("MODELSHA", model.checksum, ""),  # 64 hex digits leave no room for a comment
        ("MODEL", os.path.abspath(model.path), "model checkpoint"),
        ("CLASSES", ",".join(model.card.classes), "the model's classes, in output order"),
        ("PRECISN", model.precision, "numbers computed in"),
        ("DATE", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), "UTC of writing"),
    ]
    if source is not None:
        cards += [("SRCFILE", os.path.abspath(source), "input file"),
                  ("SRCHDU", int(hdu if hdu is not None else -1), "input HDU")]
    return cards

