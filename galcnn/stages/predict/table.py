"""The predictions table: its columns, its rows, resuming a partial one, and FITS output.

Columns, in this order: ``id, file, hdu, ra, dec, predicted, p_<class>..., confidence,
entropy, spread, status``. Rows go to ``OUT.partial`` as CSV; the complete file is renamed
to ``OUT`` or converted to a FITS binary table with provenance keywords.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from galcnn import __version__
from galcnn.card import ModelCard
from galcnn.data.atomic import atomic_output
from galcnn.errors import GalcnnError

__all__ = ["columns_for", "format_row", "done_files", "count_rows", "finish_table"]

_NUMERIC = ("ra", "dec", "confidence", "entropy", "spread")
_TEXT = ("id", "file", "predicted", "status")


def columns_for(classes: list[str]) -> list[str]:
    return (["id", "file", "hdu", "ra", "dec", "predicted"] + [f"p_{c}" for c in classes]
            + ["confidence", "entropy", "spread", "status"])


def format_row(object_id: str, path: str, hdu, ra, dec, classes: list[str],
               probs: np.ndarray | None = None, spread: float = float("nan"),
               status: str = "ok") -> list:
    """One row; without ``probs`` the belief columns are empty (a failed input)."""
    if probs is None:
        return [object_id, path, hdu, "", "", ""] + [""] * len(classes) + ["", "", "", status]
    entropy = float(-(probs * np.log(np.clip(probs, 1e-12, 1))).sum())
    coordinate = (lambda v: "" if not np.isfinite(v) else f"{v:.7f}")
    return ([object_id, path, hdu, coordinate(ra), coordinate(dec), classes[int(probs.argmax())]]
            + [f"{p:.6f}" for p in probs]
            + [f"{probs.max():.6f}", f"{entropy:.6f}",
               "" if not np.isfinite(spread) else f"{spread:.6f}", status])


def done_files(partial: str, columns: list[str]) -> set[str]:
    """Files already written to a partial table; a torn last line is cut off."""
    with open(partial, "rb") as handle:
        content = handle.read()
    complete = content[: content.rfind(b"\n") + 1]
    if len(complete) != len(content):
        with open(partial, "r+b") as handle:
            handle.truncate(len(complete))
    lines = complete.decode("utf-8").splitlines()
    if not lines:
        return set()
    if next(csv.reader([lines[0]])) != columns:
        raise GalcnnError(f"{partial}: written by another model or galcnn version (columns "
                          "differ); remove it or write to another output")
    return {row["file"] for row in csv.DictReader(lines)}


def count_rows(path: str, fmt: str) -> int:
    if fmt == "fits":
        from astropy.io import fits

        return int(fits.getheader(path, 1)["NAXIS2"])
    with open(path, encoding="utf-8") as handle:
        return max(0, sum(1 for _ in handle) - 1)


def finish_table(partial: str, out_path: str, fmt: str, card: ModelCard,
                 checksum: str) -> None:
    """Rename the complete CSV into place, or convert it to a FITS table with provenance."""
    if fmt == "csv":
        os.replace(partial, out_path)
        return
    from astropy.io import fits
    from astropy.io.ascii import convert_numpy
    from astropy.table import Table

    numeric = set(_NUMERIC) | {f"p_{c}" for c in card.classes}
    raw = Table.read(partial, format="ascii.csv", guess=False, fast_reader=False,
                     converters={name: [convert_numpy(str)] for name in _TEXT})
    table = Table()
    for name in raw.colnames:
        column = raw[name]
        if name == "hdu":
            table[name] = np.ma.filled(np.ma.asarray(column, dtype=np.float64), -1).astype(
                np.int16)
        elif name in numeric:
            table[name] = np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)
        else:
            table[name] = np.ma.filled(column.astype(str), "")
    header = fits.Header()
    header["GALCNNV"] = (__version__, "galcnn version")
    header["MODELSHA"] = (checksum[:16], "SHA-256 of the model (first 16)")
    header["CLASSES"] = (",".join(card.classes), "classes of the p_ columns")
    header["TEMPERAT"] = (float(card.temperature), "calibration temperature")
    with atomic_output(out_path) as tmp:
        fits.HDUList([fits.PrimaryHDU(header=header), fits.table_to_hdu(table)]).writeto(tmp)
    os.remove(partial)
