"""Throughput of ``galcnn prepare`` against astropy alone reading the same files, in one run.

``read`` is astropy opening every file and reading its image over all usable cores
(bench/limits.py); ``prepare`` is the whole command (reading, checks, the asinh statistics,
stretch, fill, geometry, shard and manifest writing) with 1, 2, ... workers. The figures are
the ratios ``prepare / read``, which hold on a noisy or slower machine because both rates are
measured back to back on the same files with a warm page cache.

    python bench/prepare.py                      # shared GZ1 set
    python bench/prepare.py --set mirabest --limit 500
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time

from limits import read_rate

from galcnn.data.inputs import expand_inputs
from galcnn.runtime import usable_cpus
from galcnn.stages.prepare import prepare

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data")


def prepare_rate(files: list[str], workers: int, tmp: str, data_dir: str) -> float:
    out = os.path.join(tmp, f"prepared-{workers}")
    listing = os.path.join(tmp, "files.txt")
    with open(listing, "w") as handle:
        handle.writelines(f"{f}\n" for f in files)
    start = time.perf_counter()
    result = prepare([f"@{listing}"], out, labels=os.path.join(data_dir, "labels.csv"),
                     workers=workers, overwrite=True)
    elapsed = time.perf_counter() - start
    if result.failures:
        raise SystemExit(f"{len(result.failures)} files failed: {result.failures[:3]}")
    shutil.rmtree(out)
    return len(files) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="gz1", choices=("gz1", "mirabest"))
    parser.add_argument("--data", default=SHARED, help="folder holding gz1/ and mirabest/")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N files")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    data_dir = os.path.join(args.data, args.set)
    files = [p for p, _ in expand_inputs([data_dir])][: args.limit]
    cpus = usable_cpus()
    with tempfile.TemporaryDirectory() as tmp:
        read = read_rate(files, cpus)
        rates = {w: prepare_rate(files, w, tmp, data_dir) for w in range(1, cpus + 1)}
        read = (read + read_rate(files, cpus)) / 2  # before and after, on a noisy machine
    figures = {
        "set": args.set, "n_files": len(files), "cpus": cpus,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        f"read_{cpus}cpu_per_s": round(read, 1),
        **{f"prepare_{w}w_per_s": round(r, 1) for w, r in rates.items()},
        **{f"ratio_{w}w": round(r / read, 3) for w, r in rates.items()},
    }
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
