"""The prepared-dataset format: memory-mappable ``.npy`` shards, a CSV manifest, JSON metadata.

Layout of a prepared directory (written by :mod:`galcnn.data.writer`)::

    metadata.json        classes and counts, ``preprocess`` (the recipe: bands, size, stretch,
                         fit, fill, HDU rule, dtype), ``options`` (augmentation, split, masks),
                         provenance
    manifest.csv         one row per sample (MANIFEST_COLUMNS), in shard order
    images/shard-NNNNN.npy   arrays of shape (n, bands, y, x), opened with mmap_mode="r"
    masks/shard-NNNNN.npy    with ``--masks``: uint8 (n, y, x), 0 background, 1 the central
                             object, 2 other objects (see galcnn.data.masks)
    failed.csv           file,problem for every input that could not be used (header only if none)

No sample needs to be in memory to read another, so a dataset may be larger than RAM.
"""

from __future__ import annotations

import os
from functools import cached_property

import numpy as np

from galcnn.data.integrity import DamagedDataset, check_shard, read_manifest_rows, read_metadata
from galcnn.data.masks import mask_to_target
from galcnn.data.recipe import Preprocess

__all__ = ["MANIFEST_COLUMNS", "FORMAT_NAME", "FORMAT_VERSION", "PreparedDataset",
           "read_manifest", "is_prepared_dataset"]

FORMAT_NAME = "galcnn-prepared"
FORMAT_VERSION = 2
MANIFEST_COLUMNS = ("index", "id", "file", "hdu", "label", "label_index", "split", "transform",
                    "shard", "row", "ra", "dec", "n_bad", "mask_shard", "mask_row", "weight")
"""``weight``: the sample's loss weight (1 in sets prepared before it existed)."""
IMAGES_DIR = "images"
MASKS_DIR = "masks"


def read_manifest(path: str) -> list[dict]:
    """Manifest rows with numeric columns converted (``ra``/``dec`` NaN when absent); a
    damaged manifest is :class:`~galcnn.data.integrity.DamagedDataset`."""
    rows = read_manifest_rows(path)
    for line, row in enumerate(rows, start=2):
        try:
            for key in ("index", "hdu", "label_index", "row", "n_bad", "mask_row"):
                row[key] = int(row[key]) if row.get(key, "") != "" else -1
            for key in ("ra", "dec"):
                row[key] = float(row[key]) if row.get(key, "") not in ("", "nan") \
                    else float("nan")
            row["weight"] = float(row.get("weight") or 1.0)
            if not 0 <= row["weight"] < float("inf"):
                raise ValueError
        except ValueError:
            raise DamagedDataset(path, f"line {line} holds a value that is not a number") \
                from None
    return rows


def is_prepared_dataset(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "metadata.json")) and \
        os.path.isfile(os.path.join(path, "manifest.csv"))


class PreparedDataset:
    """Random access to a prepared directory: ``dataset[i] -> (image, label_index)``.

    ``split`` selects ``train``, ``val``, ``test`` or ``unlabelled`` rows. Shards are
    memory-mapped on first use in each process, so the object can be handed to DataLoader
    workers.
    """

    def __init__(self, path: str, split: str | None = None):
        if not is_prepared_dataset(path):
            raise ValueError(f"{path} is not a prepared galcnn dataset (no metadata.json and "
                             "manifest.csv); make one with 'galcnn prepare'")
        self.path = path
        self.metadata = read_metadata(os.path.join(path, "metadata.json"))
        if self.metadata.get("format") != FORMAT_NAME:
            raise ValueError(f"{path}/metadata.json is not a galcnn prepared-dataset file")
        rows = read_manifest(os.path.join(path, "manifest.csv"))
        expected = self.metadata.get("n_samples")
        if isinstance(expected, int) and len(rows) != expected:
            raise DamagedDataset(os.path.join(path, "manifest.csv"),
                                 f"holds {len(rows)} rows, metadata.json says {expected}")
        self._check_shards(rows)
        self.rows = [r for r in rows if split is None or r["split"] == split]
        self.split = split
        self._shards: dict[str, np.ndarray] = {}

    def _check_shards(self, rows: list[dict]) -> None:
        """Every shard the manifest names is whole (see :mod:`galcnn.data.integrity`)."""
        needed: dict[str, int] = {}
        for row in rows:
            for shard, index in ((row["shard"], row["row"]),
                                 (row.get("mask_shard"), row.get("mask_row", -1))):
                if shard:
                    needed[shard] = max(needed.get(shard, 0), index + 1)
        for shard, count in needed.items():
            check_shard(os.path.join(self.path, shard), count)

    @property
    def classes(self) -> list[str]:
        return list(self.metadata.get("classes", []))

    @cached_property
    def preprocess(self) -> Preprocess:
        """The recipe every sample was made with (datasets of galcnn 0.1 included)."""
        meta = self.metadata
        if "preprocess" in meta:
            return Preprocess.from_dict(meta["preprocess"])
        return Preprocess.from_legacy({**meta.get("options", {}), "stretch": meta["stretch"]},
                                      bands=meta["bands"], size=meta["size"],
                                      band_pattern=meta.get("band_pattern"))

    @property
    def options(self) -> dict:
        """How the set was made beyond the recipe: augmentation, split, masks."""
        return dict(self.metadata.get("options", {}))

    @property
    def mirror_pairs(self) -> list[tuple[str, str]] | None:
        """The mirror-image class pairs whose reflected copies carry the partner's label
        (None: a set prepared before galcnn recorded them)."""
        pairs = self.metadata.get("mirror_pairs")
        return None if pairs is None else [(str(a), str(b)) for a, b in pairs]

    @property
    def has_reflected_copies(self) -> bool:
        """Whether the set holds stored copies that mirror their cutout."""
        options = self.options
        return options.get("augment") == "dihedral" and bool(options.get("copies"))

    @property
    def has_masks(self) -> bool:
        return bool(self.metadata.get("masks")) and all(r.get("mask_shard") for r in self.rows)

    @property
    def labels(self) -> np.ndarray:
        return np.array([r["label_index"] for r in self.rows], dtype=np.int64)

    @property
    def weights(self) -> np.ndarray:
        """Each sample's loss weight (from prepare's weight column; 1 without one)."""
        return np.array([r["weight"] for r in self.rows], dtype=np.float32)

    def __len__(self) -> int:
        return len(self.rows)

    def _shard(self, name: str) -> np.ndarray:
        if name not in self._shards:
            self._shards[name] = np.load(os.path.join(self.path, name), mmap_mode="r")
        return self._shards[name]

    def image(self, index: int) -> np.ndarray:
        row = self.rows[index]
        return np.asarray(self._shard(row["shard"])[row["row"]], dtype=np.float32)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.image(index), self.rows[index]["label_index"]

    def batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Images ``(n, bands, y, x)`` float32 and label indices of many samples at once.

        One sorted fancy-index read per shard instead of one read per sample: what makes a
        memory-mapped set as fast to train from as one held in RAM.
        """
        indices = np.asarray(indices, dtype=np.int64)
        first = self.rows[int(indices[0])] if len(indices) else None
        shape = self._shard(first["shard"]).shape[1:] if first else (0,)
        images = np.empty((len(indices), *shape), dtype=np.float32)
        by_shard: dict[str, list[int]] = {}
        for position, index in enumerate(indices):
            by_shard.setdefault(self.rows[int(index)]["shard"], []).append(position)
        for shard, positions in by_shard.items():
            rows = np.array([self.rows[int(indices[p])]["row"] for p in positions])
            order = np.argsort(rows)
            images[np.asarray(positions)[order]] = self._shard(shard)[rows[order]]
        labels = np.array([self.rows[int(i)]["label_index"] for i in indices], dtype=np.int64)
        return images, labels

    def masks(self, indices) -> np.ndarray:
        """The 0/1/2 masks ``(n, y, x)`` of many samples (a prepared set made with --masks)."""
        indices = np.asarray(indices, dtype=np.int64)
        if not self.has_masks:
            raise ValueError(f"{self.path} holds no masks; prepare it with --masks auto or "
                             "--masks hdu:NAME")
        shape = self.preprocess.size
        out = np.empty((len(indices), *shape), dtype=np.uint8)
        for position, index in enumerate(indices):
            row = self.rows[int(index)]
            out[position] = self._shard(row["mask_shard"])[row["mask_row"]]
        return out

    def pixel_targets(self, indices) -> np.ndarray:
        """Per-pixel class indices ``(n, y, x)`` of many samples, in the order of
        :func:`galcnn.data.masks.segmentation_classes` of this set's classes."""
        labels = np.array([self.rows[int(i)]["label_index"] for i in indices], dtype=np.int64)
        return mask_to_target(self.masks(indices), labels, len(self.classes))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_shards"] = {}
        return state
