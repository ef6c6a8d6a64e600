"""``galcnn similar``: the cutouts nearest to a query in an embedding table.

Distances are cosine distances between the vectors ``galcnn embed`` wrote (1 - the cosine
of the angle: 0 for the same direction, 2 for opposite), so a cutout's overall brightness,
which scales a vector more than it turns it, matters little. A query is a row of the table,
named by its id, its file or the file's name; the query itself is never its own neighbour.
Written: a CSV with one row per neighbour (``query, rank, id, file, ra, dec, distance``) and
a PNG mosaic: for each query, the query and then its neighbours nearest first, in rows of
``MOSAIC_COLUMNS`` panels, at most ``MOSAIC_NEIGHBOURS`` of them (the CSV has every one).
Relative file paths are found where ``embed`` ran (the table's ``BASEDIR``), so ``similar``
draws the same mosaic from any directory; a cutout no longer there is said, not drawn blank.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
from astropy.table import Table

from galcnn.data.atomic import make_parent, write_csv
from galcnn.data.fitsheader import from_fits_text
from galcnn.errors import GalcnnError
from galcnn.plots import plot_mosaic

__all__ = ["SimilarResult", "SimilarError", "similar", "nearest", "NEIGHBOUR_COLUMNS"]

NEIGHBOUR_COLUMNS = ["query", "rank", "id", "file", "ra", "dec", "distance"]
MOSAIC_COLUMNS = 10
MOSAIC_NEIGHBOURS = 49


class SimilarError(GalcnnError):
    """The table cannot be searched (not an embedding table, no usable rows); one line."""


@dataclass
class SimilarResult:
    out_path: str
    mosaic_path: str | None
    n_queries: int
    elapsed_s: float
    n_neighbours: int = 0
    """Rows written: ``k`` per query, or every other row when the table has fewer."""
    n_searched: int = 0
    """Embedded rows searched."""
    failures: list[tuple[str, str]] = field(default_factory=list)
    """Queries not found in the table, and why."""
    missing: list[tuple[str, str]] = field(default_factory=list)
    """Cutouts of the mosaic that could not be found."""


def nearest(vectors: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine distances of the ``k`` rows of ``vectors`` nearest to ``query``,
    nearest first."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    direction = query / max(float(np.linalg.norm(query)), 1e-12)
    distances = 1.0 - unit @ direction
    k = min(k, len(distances))
    chosen = np.argpartition(distances, k - 1)[:k] if k < len(distances) else \
        np.arange(len(distances))
    chosen = chosen[np.argsort(distances[chosen], kind="stable")]
    return chosen, distances[chosen]


def similar(table_path: str, queries: list[str], out_path: str, *, k: int = 10,
            mosaic: bool = True) -> SimilarResult:
    """Write the ``k`` nearest cutouts to each query of ``queries`` to ``out_path`` (CSV)
    and, with ``mosaic``, ``OUT`` with ``.png`` for its extension."""
    started = time.monotonic()
    if k < 1:
        raise SimilarError("-k must be at least 1")
    table = _read(table_path)
    usable = np.array([s.startswith(("ok", "warning")) for s in table["status"]]) & \
        np.isfinite(table["embedding"]).all(1)
    if usable.sum() < 2:
        raise SimilarError(f"{table_path}: fewer than 2 embedded rows to search")
    rows = table[usable]
    vectors = np.asarray(rows["embedding"], dtype=np.float64)
    names = _names(rows)
    found = {query: names.get(query, names.get(os.path.basename(query))) for query in queries}
    failures = [(query, f"not in {table_path} (an id, a file, or a file's name of an "
                        "embedded row)") for query, index in found.items() if index is None]
    if len(failures) == len(found):
        raise SimilarError(f"no query is in {table_path}: {', '.join(found)} (give an id, a "
                           "file, or a file's name of an embedded row)")
    out_rows, panels = [], []
    for query, index in found.items():
        if index is None:
            continue
        chosen, distances = nearest(vectors, vectors[index], k + 1)
        keep = chosen != index
        chosen, distances = chosen[keep][:k], distances[keep][:k]
        for rank, (position, distance) in enumerate(zip(chosen, distances), start=1):
            row = rows[int(position)]
            out_rows.append([query, rank, _text(row["id"]), _text(row["file"]),
                             _coordinate(row, "ra"),
                             _coordinate(row, "dec"), f"{distance:.6f}"])
        panels.append([(rows[index], f"query {_short(rows[index]['id'])}")] +
                      [(rows[int(p)], f"{_short(rows[int(p)]['id'])}\nd={d:.3f}")
                       for p, d in zip(chosen[:MOSAIC_NEIGHBOURS],
                                       distances[:MOSAIC_NEIGHBOURS])])
    make_parent(out_path)
    write_csv(out_path, NEIGHBOUR_COLUMNS, out_rows)
    mosaic_path, missing = None, []
    if mosaic:
        base = from_fits_text(str(table.meta.get("BASEDIR", ""))) or None
        located = [[(_located(_text(row["file"]), base), label) for row, label in query_panels]
                   for query_panels in panels]
        missing = sorted({(_text(row["file"]), _not_found(base)) for query_panels, places
                          in zip(panels, located) for (row, _), (place, _) in
                          zip(query_panels, places) if place is None})
        mosaic_path = os.path.splitext(out_path)[0] + ".png"
        plot_mosaic(located, mosaic_path, columns=MOSAIC_COLUMNS)
    return SimilarResult(out_path=out_path, mosaic_path=mosaic_path,
                         n_queries=len(found) - len(failures),
                         elapsed_s=time.monotonic() - started, n_neighbours=len(out_rows),
                         n_searched=len(rows), failures=failures, missing=missing)


def _located(file: str, base: str | None) -> str | None:
    """The cutout's file(s) as this process can open them: as written, else relative to the
    directory ``embed`` ran in; None when they are not there."""
    parts = []
    for part in file.split(";"):
        if not os.path.isabs(part) and not os.path.exists(part) and base:
            part = os.path.join(base, part)
        if not os.path.exists(part):
            return None
        parts.append(part)
    return ";".join(parts)


def _not_found(base: str | None) -> str:
    return ("cutout not found (nor relative to " + base + ", where embed ran)" if base
            else "cutout not found")


def _read(path: str) -> Table:
    try:
        table = Table.read(path, format="fits", hdu=1, mask_invalid=False)
    except Exception:  # noqa: BLE001  astropy raises many kinds for a bad file
        raise SimilarError(f"{path}: not a FITS table; similar searches the table galcnn "
                           "embed writes (embeddings.fits)") from None
    missing = [c for c in ("id", "file", "embedding", "status") if c not in table.colnames]
    if missing or np.ndim(table["embedding"]) != 2:
        raise SimilarError(f"{path}: not an embedding table (galcnn embed writes one); "
                           f"missing {', '.join(missing) or 'a vector column embedding'}")
    return table


def _text(value) -> str:
    """A text cell of a FITS table as it was before FITS escaped it."""
    return from_fits_text(str(value))


def _names(rows: Table) -> dict[str, int]:
    """Each row's id, file and file name -> its position (the first row wins a tie)."""
    names: dict[str, int] = {}
    for position in range(len(rows) - 1, -1, -1):
        path = _text(rows[position]["file"])
        for name in (_text(rows[position]["id"]), path, os.path.basename(path)):
            names[name] = position
    return names


def _short(object_id, width: int = 18) -> str:
    """An id that fits over a mosaic tile: its end, where catalogue ids differ."""
    text = str(object_id)
    return text if len(text) <= width else "..." + text[-(width - 3):]


def _coordinate(row, name: str) -> str:
    value = row[name] if name in row.colnames else np.nan
    return "" if not np.isfinite(value) else f"{float(value):.7f}"
