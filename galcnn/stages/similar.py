"""``galcnn similar``: the cutouts nearest to a query in an embedding table.

Distances are cosine distances between the vectors ``galcnn embed`` wrote (1 - the cosine
of the angle: 0 for the same direction, 2 for opposite), so a cutout's overall brightness,
which scales a vector more than it turns it, matters little. A query is a row of the table,
named by its id, its file or the file's name; the query itself is never its own neighbour.
Written: a CSV with one row per neighbour (``query, rank, id, file, ra, dec, distance``) and
a PNG mosaic, a row per query: the query, then its neighbours nearest first.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
from astropy.table import Table

from galcnn.data.atomic import make_parent, write_csv
from galcnn.errors import GalcnnError
from galcnn.plots import plot_mosaic

__all__ = ["SimilarResult", "SimilarError", "similar", "nearest", "NEIGHBOUR_COLUMNS"]

NEIGHBOUR_COLUMNS = ["query", "rank", "id", "file", "ra", "dec", "distance"]


class SimilarError(GalcnnError):
    """The table cannot be searched (not an embedding table, no usable rows); one line."""


@dataclass
class SimilarResult:
    out_path: str
    mosaic_path: str | None
    n_queries: int
    elapsed_s: float
    failures: list[tuple[str, str]] = field(default_factory=list)
    """Queries not found in the table, and why."""


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
    out_rows, failures, panels = [], [], []
    for query in queries:
        index = names.get(query) or names.get(os.path.basename(query))
        if index is None:
            failures.append((query, f"not in {table_path} (an id, a file, or a file's name "
                                    "of an embedded row)"))
            continue
        chosen, distances = nearest(vectors, vectors[index], k + 1)
        keep = chosen != index
        chosen, distances = chosen[keep][:k], distances[keep][:k]
        for rank, (position, distance) in enumerate(zip(chosen, distances), start=1):
            row = rows[int(position)]
            out_rows.append([query, rank, row["id"], row["file"], _coordinate(row, "ra"),
                             _coordinate(row, "dec"), f"{distance:.6f}"])
        panels.append([(str(rows[index]["file"]), f"query {_short(rows[index]['id'])}")] +
                      [(str(rows[int(p)]["file"]), f"{_short(rows[int(p)]['id'])}\nd={d:.3f}")
                       for p, d in zip(chosen, distances)])
    make_parent(out_path)
    write_csv(out_path, NEIGHBOUR_COLUMNS, out_rows)
    mosaic_path = None
    if mosaic and panels:
        mosaic_path = os.path.splitext(out_path)[0] + ".png"
        plot_mosaic(panels, mosaic_path)
    return SimilarResult(out_path=out_path, mosaic_path=mosaic_path,
                         n_queries=len(queries) - len(failures),
                         elapsed_s=time.monotonic() - started, failures=failures)


def _read(path: str) -> Table:
    try:
        table = Table.read(path, hdu=1, mask_invalid=False)
    except Exception as exc:  # noqa: BLE001  astropy raises many kinds for a bad file
        raise SimilarError(f"{path}: not a readable FITS table ({exc})") from None
    missing = [c for c in ("id", "file", "embedding", "status") if c not in table.colnames]
    if missing or np.ndim(table["embedding"]) != 2:
        raise SimilarError(f"{path}: not an embedding table (galcnn embed writes one); "
                           f"missing {', '.join(missing) or 'a vector column embedding'}")
    return table


def _names(rows: Table) -> dict[str, int]:
    """Each row's id, file and file name -> its position (the first row wins a tie)."""
    names: dict[str, int] = {}
    for position in range(len(rows) - 1, -1, -1):
        path = str(rows[position]["file"])
        for name in (str(rows[position]["id"]), path, os.path.basename(path)):
            names[name] = position
    return names


def _short(object_id, width: int = 18) -> str:
    """An id that fits over a mosaic tile: its end, where catalogue ids differ."""
    text = str(object_id)
    return text if len(text) <= width else "..." + text[-(width - 3):]


def _coordinate(row, name: str) -> str:
    value = row[name] if name in row.colnames else np.nan
    return "" if not np.isfinite(value) else f"{float(value):.7f}"
