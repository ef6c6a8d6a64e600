"""Turn what a user types (files, directories, globs, ``@list`` files) into image sources.

A *source* is one object to read: one FITS file, or one file per band grouped by a naming
pattern such as ``{id}_{band}.fits``. Sources come out in a stable, sorted order so that
splits, seeds and shards do not depend on the file system's listing order.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from functools import cached_property

__all__ = ["Source", "canonical_key", "FITS_SUFFIXES", "is_fits_name", "strip_fits_suffix",
           "expand_inputs", "group_bands", "sources_from_files", "collect_sources"]

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz",
                 ".fit.fz", ".fz", ".fits.bz2")


@dataclass(frozen=True)
class Source:
    """One object: its id, the files holding its bands, and the input root it was found under.

    ``id`` is the file (or object) name without its FITS extensions, what catalogues call the
    object (``587722952767439450``); ``relative`` is its path below the input folder without
    extensions (``cutouts/587722952767439450``), unique among the inputs.
    """

    id: str
    paths: tuple[str, ...]
    root: str
    relative: str = ""

    def __post_init__(self):
        if not self.relative:
            object.__setattr__(self, "relative", self.id)

    @property
    def path_text(self) -> str:
        return ";".join(self.paths)

    @cached_property  # resolving links costs system calls; a run asks more than once
    def key(self) -> str:
        """The files' canonical paths (symbolic links and ``./`` resolved): the same object
        however its path was spelled, for resuming, de-duplicating and sharding."""
        return canonical_key(self.path_text)


def canonical_key(path_text: str) -> str:
    """:attr:`Source.key` of a ``file`` column value (band files joined by ``;``)."""
    return ";".join(os.path.realpath(p) for p in path_text.split(";"))


def is_fits_name(name: str) -> bool:
    return name.lower().endswith(FITS_SUFFIXES)


def strip_fits_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in sorted(FITS_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _walk_fits(directory: str) -> list[str]:
    """FITS files below ``directory``, following links to directories but never into one
    already walked (a link loop, or two links to one folder, is walked once)."""
    found = []
    visited = {os.path.realpath(directory)}
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        kept = []
        for name in sorted(d for d in dirnames if not d.startswith(".")):
            real = os.path.realpath(os.path.join(dirpath, name))
            if real not in visited:
                visited.add(real)
                kept.append(name)
        dirnames[:] = kept
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames)
                     if is_fits_name(f) and not f.startswith("."))
    if not found and is_fits_name(directory.rstrip(os.sep)):  # meant as a file, not searched
        raise ValueError(f"{directory} is a directory, not a FITS file, and holds no FITS "
                         "files")
    return found


def _read_list_file(list_path: str) -> list[str]:
    if not os.path.isfile(list_path):
        raise ValueError(f"list file {list_path} not found")
    base = os.path.dirname(os.path.abspath(list_path))
    entries = []
    with open(list_path, encoding="utf-8") as handle:
        for line in handle:
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            if not os.path.isabs(entry) and not os.path.exists(entry):
                entry = os.path.join(base, entry)
            entries.append(entry)
    return entries


def expand_inputs(inputs: list[str] | tuple[str, ...], *, require_any: bool = False
                  ) -> list[tuple[str, str]]:
    """Return ``(file, root)`` pairs: directories recursively, globs, and ``@list`` files.

    A named file that does not exist is kept, so that it gets its own error row rather than
    vanishing; a glob or directory that matches nothing raises ValueError, and so does an
    empty result when ``require_any``.
    """
    pairs: list[tuple[str, str]] = []
    for item in inputs:
        item = os.fspath(item)
        if item.startswith("@"):
            pairs.extend(expand_inputs(_read_list_file(item[1:])))
        elif os.path.isdir(item):
            files = _walk_fits(item)
            if not files:
                raise ValueError(f"directory {item} holds no FITS files "
                                 f"({', '.join(FITS_SUFFIXES[:3])}, ...)")
            pairs.extend((f, item) for f in files)
        elif any(ch in item for ch in "*?[") and not os.path.exists(item):  # a file may be
            # named with brackets: it is that file, not a pattern
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise ValueError(f"pattern {item!r} matches no file")
            root = os.path.dirname(item.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]) or "."
            for match in matches:
                if os.path.isdir(match):
                    pairs.extend((f, match) for f in _walk_fits(match))
                else:
                    pairs.append((match, root))
        else:
            pairs.append((item, os.path.dirname(item) or "."))
    seen: set[str] = set()
    unique = []
    for path, root in pairs:
        key = os.path.realpath(path)  # one file, however spelled or linked
        if key not in seen:
            seen.add(key)
            unique.append((path, root))
    if require_any and not unique:
        raise ValueError("no input files given")
    return unique


def _source_id(path: str, root: str) -> str:
    relative = os.path.relpath(path, root)
    if relative.startswith(".."):
        relative = os.path.basename(path)
    return strip_fits_suffix(relative).replace(os.sep, "/")


def sources_from_files(pairs: list[tuple[str, str]]) -> list[Source]:
    """One source per file: its id is the file name without FITS extensions, its relative
    name the path below its input root without them."""
    sources = []
    for path, root in pairs:
        relative = _source_id(path, root)
        sources.append(Source(id=relative.rsplit("/", 1)[-1], paths=(path,), root=root,
                              relative=relative))
    return sources


def _pattern_regex(pattern: str) -> re.Pattern:
    if "{band}" not in pattern or "{id}" not in pattern:
        raise ValueError(f"band pattern {pattern!r} must contain both {{id}} and {{band}}")
    parts = re.split(r"(\{id\}|\{band\})", pattern)
    regex = ""
    for part in parts:
        if part == "{id}":
            regex += r"(?P<id>.+?)"
        elif part == "{band}":
            regex += r"(?P<band>[^/\\]+?)"
        else:
            regex += re.escape(part)
    return re.compile(regex + r"\Z")


def group_bands(pairs: list[tuple[str, str]], pattern: str, bands: list[str] | None
                ) -> tuple[list[Source], list[str], list[tuple[str, str]]]:
    """Group one-file-per-band inputs into multi-band sources.

    Returns the sources (bands in order), the band names, and ``(file, problem)`` pairs for
    files that fit no group (wrong name, missing or unknown band).
    """
    regex = _pattern_regex(pattern)
    groups: dict[tuple[str, str], dict[str, str]] = {}
    problems: list[tuple[str, str]] = []
    for path, root in pairs:
        match = regex.match(os.path.basename(path))
        if match is None:
            problems.append((path, f"file name does not match the band pattern {pattern!r}"))
            continue
        key = (os.path.join(os.path.dirname(path), match["id"]), root)
        groups.setdefault(key, {})[match["band"]] = path
    band_order = list(bands) if bands else sorted({b for g in groups.values() for b in g})
    sources = []
    for (stem, root), members in sorted(groups.items()):
        unknown = sorted(set(members) - set(band_order))
        missing = [b for b in band_order if b not in members]
        if unknown or missing:
            what = []
            if missing:
                what.append(f"missing band(s) {','.join(missing)}")
            if unknown:
                what.append(f"unknown band(s) {','.join(unknown)}")
            for path in members.values():
                problems.append((path, "; ".join(what) + f" for object {os.path.basename(stem)}"))
            continue
        paths = tuple(members[b] for b in band_order)
        relative = os.path.relpath(stem, root)
        object_id = (os.path.basename(stem) if relative.startswith("..") else relative)
        relative = object_id.replace(os.sep, "/")
        sources.append(Source(id=relative.rsplit("/", 1)[-1], paths=paths, root=root,
                              relative=relative))
    return sources, band_order, problems


def collect_sources(inputs: list[str] | tuple[str, ...], *, band_pattern: str | None = None,
                    bands: list[str] | tuple[str, ...] | None = None, require_any: bool = False
                    ) -> tuple[list[Source], list[str], list[tuple[str, str]]]:
    """Sources of ``inputs``: one per file, or one per object of one-file-per-band inputs
    grouped by ``band_pattern``. Returns the sources, the band order of a grouping (empty
    without one) and ``(file, problem)`` for files that fit no group. Raises ValueError for
    inputs that name nothing."""
    pairs = expand_inputs(inputs, require_any=require_any)
    if band_pattern:
        return group_bands(pairs, band_pattern, list(bands) if bands else None)
    return sources_from_files(pairs), [], []
