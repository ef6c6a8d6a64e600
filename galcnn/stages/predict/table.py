"""The predictions table: its columns, its rows, resuming a partial one, and FITS output.

Columns, in this order: ``id, file, hdu, ra, dec, predicted, p_<class>..., confidence,
entropy, spread, status``. Rows go to ``OUT.partial`` as CSV; the complete file is renamed
to ``OUT`` or converted to a FITS binary table with provenance keywords.
"""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np

from galcnn import __version__
from galcnn.card import ModelCard
from galcnn.data.atomic import atomic_output, write_csv, write_json
from galcnn.data.fitsheader import set_text
from galcnn.data.inputs import canonical_key
from galcnn.errors import GalcnnError

__all__ = ["columns_for", "format_row", "done_files", "count_rows", "finish_table",
           "identity_path", "write_identity", "check_identity"]

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
    """Canonical keys (:func:`galcnn.data.inputs.canonical_key`) of the inputs a partial
    table holds; a torn last row is cut off. Parsed as CSV, so file names holding line
    breaks (quoted by the writer) count once."""
    with open(partial, "rb") as handle:
        text = handle.read().decode("utf-8", errors="replace")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        return set()
    if rows[0] != columns:
        raise GalcnnError(f"{partial}: written by another model or galcnn version (columns "
                          "differ); remove it or write to another output")
    complete = rows
    if not text.endswith("\n") or len(rows[-1]) != len(columns):
        complete = rows[:-1]  # a kill mid-row
    complete = [complete[0]] + [row for row in complete[1:] if len(row) == len(columns)]
    if len(complete) != len(rows):
        write_csv(partial, complete[0], complete[1:])
    position = columns.index("file")
    return {canonical_key(row[position]) for row in complete[1:]}


def count_rows(path: str, fmt: str) -> int:
    if fmt == "fits":
        from astropy.io import fits

        return int(fits.getheader(path, 1)["NAXIS2"])
    with open(path, newline="", encoding="utf-8") as handle:
        return max(0, sum(1 for _ in csv.reader(handle)) - 1)


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
    set_text(header, "CLASSES", ",".join(card.classes), "classes of the p_ columns")
    header["TEMPERAT"] = (float(card.temperature), "calibration temperature")
    with atomic_output(out_path) as tmp:
        fits.HDUList([fits.PrimaryHDU(header=header), fits.table_to_hdu(table)]).writeto(tmp)
    os.remove(partial)


def identity_path(out_path: str) -> str:
    """``DIR/.NAME.galcnn.json`` beside a predictions table: the model and options that
    wrote it, so that a resume with anything else is refused."""
    directory, name = os.path.split(os.path.abspath(out_path))
    return os.path.join(directory, f".{name}.galcnn.json")


def write_identity(out_path: str, identity: dict) -> None:
    write_json(identity_path(out_path), identity)


def check_identity(out_path: str, what: str, identity: dict) -> None:
    """Refuse to add rows to (or call complete) ``what`` unless the same model and options
    wrote it."""
    try:
        with open(identity_path(out_path), encoding="utf-8") as handle:
            written = json.load(handle)
    except (OSError, ValueError):
        raise GalcnnError(f"{what}: no record of the model that wrote it; use --overwrite to "
                          "start again") from None
    if written.get("model_sha256") != identity["model_sha256"]:
        raise GalcnnError(f"{what} was written by another model (SHA-256 "
                          f"{str(written.get('model_sha256'))[:16]}, this one "
                          f"{identity['model_sha256'][:16]}); use --overwrite to start again "
                          "or write to another output")
    differ = sorted(k for k in identity if written.get(k) != identity[k])
    if differ:
        said = ", ".join(f"{k} {written.get(k)!r} (now {identity[k]!r})" for k in differ)
        raise GalcnnError(f"{what} was written with other options: {said}; rerun with them, "
                          "or use --overwrite to start again")
