"""The physical limits the benchmarks compare galcnn with, measured on the same files.

``read``: cutouts/s of astropy alone opening each file and reading its image, over all usable
cores (one process per core), the bare minimum any FITS pipeline pays. ``limit`` combines it
with the model's own rate: on a CPU, where reading and the model share the cores, the
harmonic combination ``1 / (1/read + 1/model)``; on a GPU, the slower of the two.
"""

from __future__ import annotations

import multiprocessing
import time

from astropy.io import fits

__all__ = ["read_one", "read_rate", "limit"]


def read_one(path: str) -> float:
    """Open a file and read its first image (what every FITS reader must do)."""
    with fits.open(path, memmap=False) as hdul:
        for hdu in hdul:
            if hdu.header.get("NAXIS", 0) >= 2:
                return float(hdu.data.sum())
    return 0.0


def read_rate(files: list[str], workers: int) -> float:
    """Cutouts/s of :func:`read_one` over ``workers`` processes (warm page cache: read twice,
    timed the second time)."""
    context = multiprocessing.get_context("fork")
    with context.Pool(workers) as pool:
        list(pool.imap_unordered(read_one, files, chunksize=64))
        start = time.perf_counter()
        list(pool.imap_unordered(read_one, files, chunksize=64))
        return len(files) / (time.perf_counter() - start)


def limit(read: float, model: float, device_type: str) -> float:
    """The best end-to-end rate the machine allows."""
    if device_type == "cuda":
        return min(read, model)
    return 1.0 / (1.0 / read + 1.0 / model)
