"""Class labels for cutouts: from a CSV/FITS table, from class-named folders, or none.

Table ids match a file by its path relative to the table, its path below the input folder,
its name, or its name without the FITS extension, so that the catalogues users already have
(``file,label`` or ``objid,label``) work as they are.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field

import numpy as np

from galcnn.data.inputs import Source, strip_fits_suffix

__all__ = ["LabelTable", "ResolvedLabels", "read_label_table", "weight_of", "find_label_file",
           "label_file_in", "matched_ids", "match_labels", "labels_from_directories",
           "choose_classes", "resolve_labels"]

ID_COLUMNS = ("file", "filename", "path", "id", "objid", "name", "object")
LABEL_COLUMNS = ("label", "class", "morphology", "type")
LABEL_FILE_NAMES = ("labels.csv", "labels.fits", "labels.ecsv")


@dataclass
class LabelTable:
    """Labels keyed by normalised id, and where they came from."""

    path: str
    id_column: str
    label_column: str
    labels: dict[str, str]
    n_rows: int
    n_filtered: int = 0
    n_empty: int = 0
    conflicts: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    """Per-sample loss weights by id, from the weight column (empty without one)."""
    weight_column: str | None = None


TRUE_WORDS, FALSE_WORDS = ("true", "t", "yes", "y"), ("false", "f", "no", "n")


def weight_of(text: str, mapping: dict[str, float] | None = None) -> float:
    """A weight column's value as a loss weight. ``mapping`` first (``{"0": 0.5}``: the
    catalogue's uncertain sources count half); else a number is the weight itself, and
    true/yes 1, false/no 0, an empty cell 1. ValueError for anything else, or a weight
    that is negative or not finite."""
    value = str(text).strip()
    if mapping and value in mapping:
        weight = float(mapping[value])
    elif value == "" or value.lower() in TRUE_WORDS:
        weight = 1.0
    elif value.lower() in FALSE_WORDS:
        weight = 0.0
    else:
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a weight (a number, true/false, or a value "
                             "mapped with --weight-map VALUE=WEIGHT)") from None
    if not 0 <= weight < float("inf"):
        raise ValueError(f"weight {value!r} -> {weight} is not a finite number >= 0")
    return weight


def _normalise_id(value: str) -> str:
    text = str(value).strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return os.path.normpath(text) if os.path.isabs(text) else text


def _read_rows(path: str) -> tuple[list[str], list[dict[str, str]]]:
    if path.lower().endswith((".csv", ".txt")):
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = [dict(row) for row in reader]
            return list(reader.fieldnames or []), rows
    from astropy.table import Table

    table = Table.read(path)
    columns = list(table.colnames)
    rows = []
    for row in table:
        values = {}
        for name in columns:
            value = row[name]
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            values[name] = "" if np.ma.is_masked(value) else str(value).strip()
        rows.append(values)
    return columns, rows


def _pick_column(columns: list[str], wanted: str | None, candidates: tuple[str, ...],
                 what: str, path: str) -> str:
    by_lower = {c.lower(): c for c in columns}
    if wanted is not None:
        if wanted in columns:
            return wanted
        if wanted.lower() in by_lower:
            return by_lower[wanted.lower()]
        raise ValueError(f"{path}: no {what} column {wanted!r} (columns: {', '.join(columns)})")
    for candidate in candidates:
        if candidate in by_lower:
            return by_lower[candidate]
    raise ValueError(f"{path}: cannot tell which column holds the {what} (columns: "
                     f"{', '.join(columns)}); name it with --{what.replace(' ', '-')}-column")


def read_label_table(path: str, *, id_column: str | None = None,
                     label_column: str | None = None,
                     where: dict[str, str] | None = None, weight_column: str | None = None,
                     weight_map: dict[str, float] | None = None) -> LabelTable:
    """Read ``id -> label`` from a CSV, FITS, ECSV or VOTable table.

    ``where`` keeps only rows whose columns equal the given text (e.g. ``{"confident": "1"}``).
    Rows with an empty label are dropped and counted; an id listed twice with different labels
    is a conflict, reported and left unlabelled. ``weight_column`` gives each id a loss weight
    (:func:`weight_of`, with ``weight_map``).
    """
    if not os.path.isfile(path):
        raise ValueError(f"label table {path} not found")
    try:
        columns, rows = _read_rows(path)
    except Exception as exc:
        raise ValueError(f"{path}: cannot read label table ({exc})") from exc
    if not rows:
        raise ValueError(f"{path}: label table has no rows")
    id_col = _pick_column(columns, id_column, ID_COLUMNS, "id", path)
    label_col = _pick_column(columns, label_column, LABEL_COLUMNS, "label", path)
    where = where or {}
    for column in where:
        _pick_column(columns, column, (), f"filter ({column})", path)
    weight_col = (_pick_column(columns, weight_column, (), "weight", path)
                  if weight_column else None)
    weights: dict[str, float] = {}
    labels: dict[str, str] = {}
    conflicting: set[str] = set()
    n_filtered = n_empty = 0
    for row in rows:
        if any(str(row.get(column, "")).strip() != str(value) for column, value in where.items()):
            n_filtered += 1
            continue
        key = _normalise_id(row.get(id_col, ""))
        label = str(row.get(label_col, "") or "").strip()
        if not key:
            continue
        if not label:
            n_empty += 1
            continue
        if key in labels and labels[key] != label:
            conflicting.add(key)
        labels.setdefault(key, label)
        if weight_col:
            try:
                weights.setdefault(key, weight_of(row.get(weight_col, ""), weight_map))
            except ValueError as exc:
                raise ValueError(f"{path}: column {weight_col!r} of id {key!r}: {exc}") \
                    from None
    for key in conflicting:
        del labels[key]
    return LabelTable(path=path, id_column=id_col, label_column=label_col, labels=labels,
                      n_rows=len(rows), n_filtered=n_filtered, n_empty=n_empty,
                      conflicts=sorted(conflicting), weights=weights,
                      weight_column=weight_col)


def find_label_file(inputs: list[str]) -> str | None:
    """A ``labels.csv`` (or .fits/.ecsv) inside the single input directory, if there is one."""
    if len(inputs) != 1:
        return None
    return label_file_in(inputs[0])


def label_file_in(folder: str) -> str | None:
    """A ``labels.csv`` (or .fits/.ecsv) inside ``folder``, if it is a folder holding one."""
    if not os.path.isdir(folder):
        return None
    for name in LABEL_FILE_NAMES:
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _candidate_keys(source: Source, table_dir: str) -> list[str]:
    keys = [source.relative, source.id]
    if len(source.paths) == 1:
        path = source.paths[0]
        name = os.path.basename(path)
        keys = [os.path.relpath(os.path.abspath(path), table_dir), os.path.relpath(path, source.root),
                os.path.abspath(path), name, strip_fits_suffix(name), source.relative, source.id]
    return [_normalise_id(k) for k in keys]


def matched_ids(sources: list[Source], table: LabelTable) -> dict[Source, str]:
    """The table id each source matches (sources that match none are left out)."""
    table_dir = os.path.dirname(os.path.abspath(table.path))
    matched: dict[Source, str] = {}
    for source in sources:
        for key in _candidate_keys(source, table_dir):
            if key in table.labels:
                matched[source] = key
                break
    return matched


def match_labels(sources: list[Source], table: LabelTable,
                 ids: dict[Source, str] | None = None
                 ) -> tuple[dict[Source, str], list[Source], list[str]]:
    """Labels per source, the sources with no label, and table ids that matched no file
    (``ids``: :func:`matched_ids`, when the caller has them already)."""
    ids = matched_ids(sources, table) if ids is None else ids
    unlabelled = [source for source in sources if source not in ids]
    missing = sorted(set(table.labels) - set(ids.values()))
    return {source: table.labels[key] for source, key in ids.items()}, unlabelled, missing


def labels_from_directories(sources: list[Source]) -> dict[Source, str] | None:
    """``cutouts/<class>/...`` layout: the first folder below the input root is the label.

    Returns None unless every source sits in a subfolder. One folder is one class (what a
    classifier cannot train on, but must be told, not read as no labels)."""
    labels = {}
    for source in sources:
        relative = os.path.relpath(source.paths[0], source.root).replace(os.sep, "/")
        if "/" not in relative or relative.startswith(".."):
            return None
        labels[source] = relative.split("/", 1)[0]
    return labels or None


def choose_classes(labels: dict[Source, str], classes: list[str] | None
                   ) -> tuple[list[str], dict[Source, str], dict[str, int]]:
    """Order the classes (given order, else sorted) and drop sources whose class is not chosen.

    Returns the class list, the kept labels, and a count of dropped sources per dropped class.
    """
    present = sorted(set(labels.values()))
    if classes:
        unknown = [c for c in classes if c not in present]
        if unknown:
            raise ValueError(f"class(es) {', '.join(unknown)} not found among the labels "
                             f"({', '.join(present)})")
        if len(set(classes)) != len(classes):
            raise ValueError(f"class list names a class twice: {','.join(classes)}")
        order = list(classes)
    else:
        order = present
    kept = {s: lab for s, lab in labels.items() if lab in order}
    dropped: dict[str, int] = {}
    for lab in labels.values():
        if lab not in order:
            dropped[lab] = dropped.get(lab, 0) + 1
    return order, kept, dropped


@dataclass
class ResolvedLabels:
    """Where each source's label came from, and what did not match."""

    labels: dict[Source, str] | None
    """None: the inputs carry no labels."""
    source: str
    """``table:PATH``, ``directories`` or ``none``."""
    unlabelled: list[Source] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Table ids that matched no input file."""
    info: dict = field(default_factory=dict)
    """How the table was read (columns, filters, counts), for the dataset's metadata."""
    weights: dict[Source, float] | None = None
    """Per-source loss weights from the table's weight column; None without one."""


def resolve_labels(sources: list[Source], inputs: list[str], *, table: str | None = None,
                   id_column: str | None = None, label_column: str | None = None,
                   where: dict[str, str] | None = None, no_labels: bool = False,
                   weight_column: str | None = None,
                   weight_map: dict[str, float] | None = None) -> ResolvedLabels:
    """Labels by precedence: ``table`` for every input; else, for each input folder on its
    own, a ``labels.csv`` inside it, then its class-named subdirectories; else none (the
    sources of an input without labels are then unlabelled). Raises ValueError when a table
    matches no input. A ``weight_column`` needs one table for every input."""
    if no_labels:
        return ResolvedLabels(None, "none")
    if weight_column:
        table = table or find_label_file(inputs)
        if not table:
            raise ValueError(f"--weight-column {weight_column} needs a label table (--labels, "
                             "or a labels.csv in the one input folder)")
        return _from_table(sources, table, id_column, label_column, where,
                           (weight_column, weight_map))
    if table:
        return _from_table(sources, table, id_column, label_column, where)
    by_root: dict[str, list[Source]] = {}
    for source in sources:
        by_root.setdefault(source.root, []).append(source)
    parts = {root: _from_folder(root, members, id_column, label_column, where)
             for root, members in by_root.items()}
    if len(parts) == 1:
        return next(iter(parts.values()))
    labelled = [part for part in parts.values() if part.labels is not None]
    if not labelled:
        return ResolvedLabels(None, "none")
    return ResolvedLabels(
        {s: label for part in labelled for s, label in part.labels.items()},
        "; ".join(f"{part.source} ({root})" if part.source in ("none", "directories")
                  else part.source for root, part in parts.items()),
        [s for root, part in parts.items()
         for s in (part.unlabelled if part.labels is not None else by_root[root])],
        [m for part in labelled for m in part.missing],
        {"per_input": [{"input": root, "source": part.source, **part.info}
                       for root, part in parts.items()],
         "conflicting_ids": [c for part in labelled
                             for c in part.info.get("conflicting_ids", [])]})


def _from_folder(root: str, members: list[Source], id_column, label_column,
                 where) -> ResolvedLabels:
    """One input folder's labels: its own labels.csv, else its class folders, else none."""
    table = label_file_in(root)
    if table:
        return _from_table(members, table, id_column, label_column, where)
    labels = labels_from_directories(members)
    if labels is not None:
        return ResolvedLabels(labels, "directories")
    return ResolvedLabels(None, "none")


def _from_table(sources: list[Source], table: str, id_column, label_column,
                where, weighting: tuple[str, dict | None] = (None, None)) -> ResolvedLabels:
    read = read_label_table(table, id_column=id_column, label_column=label_column,
                            where=where, weight_column=weighting[0], weight_map=weighting[1])
    ids = matched_ids(sources, read)
    labels, unlabelled, missing = match_labels(sources, read, ids)
    if not labels:
        if where and read.n_filtered == read.n_rows:
            raise ValueError(_no_row_passes(table, where))
        raise ValueError(f"{table}: no label matched any input file (ids like "
                         f"{next(iter(read.labels), '?')!r} vs files like "
                         f"{sources[0].paths[0]!r}); check --id-column")
    info = {"table": os.path.abspath(table), "id_column": read.id_column,
            "label_column": read.label_column, "where": dict(where or {}),
            "rows": read.n_rows, "rows_filtered_out": read.n_filtered,
            "rows_without_label": read.n_empty, "conflicting_ids": read.conflicts}
    weights = None
    if read.weight_column:
        weights = {source: read.weights[key] for source, key in ids.items()}
        info["weights"] = {"column": read.weight_column, "map": dict(weighting[1] or {}),
                           "mean": float(np.mean(list(weights.values())))}
    return ResolvedLabels(labels, f"table:{table}", unlabelled, missing, info, weights)


def _no_row_passes(table: str, where: dict[str, str]) -> str:
    """Which filter kept no row of the table, and the values its column holds."""
    columns, rows = _read_rows(table)
    said = []
    for column, wanted in where.items():
        name = _pick_column(columns, column, (), f"filter ({column})", table)
        values = sorted({str(row.get(name, "")).strip() for row in rows})
        shown = ", ".join(repr(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")
        said.append(f"{column}={wanted} (the column holds {shown})")
    return (f"{table}: no row passes --where {' and '.join(said)}; nothing to label")
