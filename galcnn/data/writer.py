"""Writing a prepared dataset: image (and mask) shards, the manifest and the metadata, made
under a temporary directory beside the output and moved into place only when complete.

The format is described in :mod:`galcnn.data.dataset`.
"""

from __future__ import annotations

import os
import shutil

import numpy as np

from galcnn.data.augment import is_reflection
from galcnn.data.atomic import (make_parent, replace_directory, temporary_path, write_csv,
                                write_json, write_text)
from galcnn.data.dataset import (FORMAT_NAME, FORMAT_VERSION, IMAGES_DIR, MANIFEST_COLUMNS,
                                 MASKS_DIR)
from galcnn.data.inputs import Source

__all__ = ["ShardWriter", "DatasetWriter", "store_samples"]


def store_samples(samples: list, directory: str, name: str) -> None:
    """Write the images (and masks) of reader samples into one shard ``name`` of a prepared
    directory; each sample keeps where its images went (``stored``, ``stored_masks``)
    instead of the arrays. How reading workers hand a batch over without sending it."""
    kinds = (("images", "stored", IMAGES_DIR), ("masks", "stored_masks", MASKS_DIR))
    for attribute, places, subdir in kinds:
        arrays = [array for sample in samples for array in getattr(sample, attribute)]
        if not arrays:
            continue
        np.save(os.path.join(directory, subdir, name), np.stack(arrays))
        row = 0
        for sample in samples:
            count = len(getattr(sample, attribute))
            setattr(sample, places, [(f"{subdir}/{name}", row + i) for i in range(count)])
            setattr(sample, attribute, [])
            row += count


class ShardWriter:
    """Append samples of one shape and dtype to ``.npy`` shards of about ``shard_bytes``.

    Samples are written straight into the memory-mapped shard file (one copy, into the page
    cache); a partly filled last shard is rewritten at its true length when closed.
    """

    def __init__(self, directory: str, sample_shape: tuple[int, ...], dtype: str = "float32", *,
                 shard_bytes: int = 64 * 2**20, subdir: str = IMAGES_DIR):
        self.directory = directory
        self.subdir = subdir
        self.sample_shape = tuple(sample_shape)
        self.dtype = np.dtype(dtype)
        sample_bytes = int(np.prod(self.sample_shape)) * self.dtype.itemsize
        self.per_shard = max(1, shard_bytes // sample_bytes)
        self._shard: np.memmap | None = None
        self._n_in_shard = 0
        self.shards: list[dict] = []
        os.makedirs(os.path.join(directory, subdir), exist_ok=True)

    @property
    def _shard_name(self) -> str:
        return f"{self.subdir}/shard-{len(self.shards):05d}.npy"

    def add(self, sample: np.ndarray) -> tuple[str, int]:
        """Store one sample; returns (shard file, row) where it will be found."""
        if sample.shape != self.sample_shape:
            raise ValueError(f"sample shape {sample.shape} != {self.sample_shape}")
        if self._shard is None:
            self._shard = np.lib.format.open_memmap(
                os.path.join(self.directory, self._shard_name), mode="w+", dtype=self.dtype,
                shape=(self.per_shard, *self.sample_shape))
        name, row = self._shard_name, self._n_in_shard
        self._shard[row] = sample
        self._n_in_shard += 1
        if self._n_in_shard == self.per_shard:
            self._finish_shard()
        return name, row

    def _finish_shard(self) -> None:
        if self._shard is None:
            return
        name, n = self._shard_name, self._n_in_shard
        path = os.path.join(self.directory, name)
        self._shard.flush()
        if n < self.per_shard:  # the header says per_shard rows: rewrite at the true length
            np.save(f"{path}.part.npy", self._shard[:n])
            del self._shard
            os.replace(f"{path}.part.npy", path)
        self._shard = None
        self.shards.append({"file": name, "n": n})
        self._n_in_shard = 0

    def close(self) -> list[dict]:
        self._finish_shard()
        return self.shards


class DatasetWriter:
    """Samples in, a complete prepared directory out (or nothing, if the run fails).

    Use as a context manager: the temporary directory is removed whatever happens; the output
    appears only through :meth:`commit`.
    """

    def __init__(self, out_dir: str, sample_shape: tuple[int, ...], dtype: str, *,
                 masks: bool = False, overwrite: bool = False):
        self.out_dir, self.overwrite = out_dir, overwrite
        make_parent(out_dir)
        self.tmp_dir = temporary_path(out_dir)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        os.makedirs(self.tmp_dir)
        self.images = ShardWriter(self.tmp_dir, sample_shape, dtype)
        self.masks = (ShardWriter(self.tmp_dir, sample_shape[1:], "uint8", subdir=MASKS_DIR)
                      if masks else None)
        self.rows: list[dict] = []
        self._stored: dict[str, dict[str, int]] = {IMAGES_DIR: {}, MASKS_DIR: {}}

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def add(self, source: Source, sample, *, label: str = "", label_index: int = -1,
            split: str = "unlabelled", reflected: tuple[str, int] | None = None,
            weight: float = 1.0) -> None:
        """One manifest row per image of a reader sample, storing its images (and masks)
        unless the reader already did. ``reflected``: the label (and index) of the copies
        that mirror the cutout, for a class whose mirror image is another class; ``weight``:
        the sample's loss weight."""
        places = sample.stored or [self.images.add(image) for image in sample.images]
        mask_places = (sample.stored_masks or [self.masks.add(m) for m in sample.masks]
                       if self.masks else [("", "")] * len(places))
        for kind, stored in ((IMAGES_DIR, sample.stored), (MASKS_DIR, sample.stored_masks)):
            for shard, _ in stored:
                self._stored[kind][shard] = self._stored[kind].get(shard, 0) + 1
        for (shard, row), (mask_shard, mask_row), transform in zip(places, mask_places,
                                                                   sample.transforms):
            name, index = (reflected if reflected and is_reflection(transform)
                           else (label, label_index))
            self.rows.append({"index": len(self.rows), "id": source.id,
                              "file": source.path_text, "hdu": sample.hdu, "label": name,
                              "label_index": index, "split": split,
                              "transform": transform, "shard": shard, "row": row,
                              "ra": f"{sample.ra:.7f}", "dec": f"{sample.dec:.7f}",
                              "n_bad": sample.n_bad, "mask_shard": mask_shard,
                              "mask_row": mask_row, "weight": f"{weight:.6g}"})

    def _shards(self, writer: ShardWriter, kind: str) -> list[dict]:
        """Every shard with its row count: those written here, then those readers stored."""
        return writer.close() + [{"file": name, "n": n}
                                 for name, n in sorted(self._stored[kind].items())]

    def commit(self, metadata: dict, *, failures: list[tuple[str, str]],
               lists: dict[str, list[str]]) -> None:
        """Write the manifest, ``metadata.json``, ``failed.csv`` and the non-empty ``lists``
        (file name -> lines), then move the directory into place."""
        metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **metadata,
                    "shards": self._shards(self.images, IMAGES_DIR)}
        if self.masks:
            metadata["masks"] = {**metadata.get("masks", {}),
                                 "shards": self._shards(self.masks, MASKS_DIR)}
        write_csv(os.path.join(self.tmp_dir, "manifest.csv"), MANIFEST_COLUMNS, self.rows)
        write_csv(os.path.join(self.tmp_dir, "failed.csv"), ["file", "problem"], failures)
        for name, lines in lists.items():
            if lines:
                write_text(os.path.join(self.tmp_dir, name), "".join(f"{x}\n" for x in lines))
        write_json(os.path.join(self.tmp_dir, "metadata.json"), metadata)
        replace_directory(self.tmp_dir, self.out_dir, self.overwrite)
