"""The prepared-dataset format: memory-mappable ``.npy`` shards, a CSV manifest, JSON metadata.

Layout of a prepared directory::

    metadata.json        classes, bands, size, dtype, stretch, geometry, augmentation, provenance
    manifest.csv         one row per sample (MANIFEST_COLUMNS), in shard order
    images/shard-NNNNN.npy   arrays of shape (n, bands, y, x), opened with mmap_mode="r"
    masks/shard-NNNNN.npy    with ``--masks``: uint8 (n, y, x), 0 background, 1 the central
                             object, 2 other objects (see galcnn.masks)
    failed.csv           file,problem for every input that could not be used (header only if none)

No sample needs to be in memory to read another, so a dataset may be larger than RAM.
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np

__all__ = ["MANIFEST_COLUMNS", "FORMAT_NAME", "FORMAT_VERSION", "ShardWriter",
           "PreparedDataset", "write_manifest", "read_manifest", "is_prepared_dataset"]

FORMAT_NAME = "galcnn-prepared"
FORMAT_VERSION = 1
MANIFEST_COLUMNS = ("index", "id", "file", "hdu", "label", "label_index", "split", "transform",
                    "shard", "row", "ra", "dec", "n_bad", "mask_shard", "mask_row")
IMAGES_DIR = "images"
MASKS_DIR = "masks"


class ShardWriter:
    """Append samples of one shape and dtype; each full shard is saved as one ``.npy`` file."""

    def __init__(self, directory: str, sample_shape: tuple[int, ...], dtype: str = "float32", *,
                 shard_bytes: int = 64 * 2**20, subdir: str = IMAGES_DIR):
        self.directory = directory
        self.subdir = subdir
        self.sample_shape = tuple(sample_shape)
        self.dtype = np.dtype(dtype)
        sample_bytes = int(np.prod(self.sample_shape)) * self.dtype.itemsize
        self.per_shard = max(1, shard_bytes // sample_bytes)
        self._buffer = np.empty((self.per_shard, *self.sample_shape), dtype=self.dtype)
        self._n_in_buffer = 0
        self.shards: list[dict] = []
        os.makedirs(os.path.join(directory, subdir), exist_ok=True)

    @property
    def _shard_name(self) -> str:
        return f"{self.subdir}/shard-{len(self.shards):05d}.npy"

    def add(self, sample: np.ndarray) -> tuple[str, int]:
        """Store one sample; returns (shard file, row) where it will be found."""
        if sample.shape != self.sample_shape:
            raise ValueError(f"sample shape {sample.shape} != {self.sample_shape}")
        name, row = self._shard_name, self._n_in_buffer
        self._buffer[row] = sample
        self._n_in_buffer += 1
        if self._n_in_buffer == self.per_shard:
            self._flush()
        return name, row

    def _flush(self) -> None:
        if self._n_in_buffer == 0:
            return
        name = self._shard_name
        np.save(os.path.join(self.directory, name), self._buffer[: self._n_in_buffer])
        self.shards.append({"file": name, "n": self._n_in_buffer})
        self._n_in_buffer = 0

    def close(self) -> list[dict]:
        self._flush()
        self._buffer = np.empty((0, *self.sample_shape), dtype=self.dtype)
        return self.shards


def write_manifest(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in MANIFEST_COLUMNS})


def read_manifest(path: str) -> list[dict]:
    """Manifest rows with numeric columns converted (``ra``/``dec`` NaN when absent)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            for key in ("index", "hdu", "label_index", "row", "n_bad", "mask_row"):
                row[key] = int(row[key]) if row.get(key, "") != "" else -1
            for key in ("ra", "dec"):
                row[key] = float(row[key]) if row.get(key, "") not in ("", "nan") else float("nan")
            rows.append(row)
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
        with open(os.path.join(path, "metadata.json"), encoding="utf-8") as handle:
            self.metadata = json.load(handle)
        if self.metadata.get("format") != FORMAT_NAME:
            raise ValueError(f"{path}/metadata.json is not a galcnn prepared-dataset file")
        rows = read_manifest(os.path.join(path, "manifest.csv"))
        self.rows = [r for r in rows if split is None or r["split"] == split]
        self.split = split
        self._shards: dict[str, np.ndarray] = {}

    @property
    def classes(self) -> list[str]:
        return list(self.metadata.get("classes", []))

    @property
    def has_masks(self) -> bool:
        return bool(self.metadata.get("masks")) and all(r.get("mask_shard") for r in self.rows)

    @property
    def labels(self) -> np.ndarray:
        return np.array([r["label_index"] for r in self.rows], dtype=np.int64)

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
        shape = tuple(self.metadata["size"])
        out = np.empty((len(indices), *shape), dtype=np.uint8)
        for position, index in enumerate(indices):
            row = self.rows[int(index)]
            out[position] = self._shard(row["mask_shard"])[row["mask_row"]]
        return out

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_shards"] = {}
        return state
