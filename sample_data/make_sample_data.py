"""Rebuild sample_data/: simulated cutouts and field (galcnn.data.simulate) and a few real cutouts.

Run from the repository root: ``python sample_data/make_sample_data.py [SHARED_DATA_DIR]``.
The real cutouts are copied from the shared survey data (default ../shared/data) when present.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys

import numpy as np

from galcnn.data.simulate import CLASSES, simulate_cutout, write_cutout, write_field

HERE = os.path.dirname(os.path.abspath(__file__))
N_SIMULATED_PER_CLASS = 30
N_GZ1_PER_CLASS = 10
N_MIRABEST_PER_CLASS = 10


def make_simulated(rng: np.random.Generator) -> None:
    root = os.path.join(HERE, "simulated")
    shutil.rmtree(root, ignore_errors=True)
    for kind in CLASSES:
        os.makedirs(os.path.join(root, kind))
        for index in range(N_SIMULATED_PER_CLASS):
            cutout = simulate_cutout(kind, size=64, rng=rng)
            write_cutout(os.path.join(root, kind, f"{kind}_{index:03d}.fits.fz"), cutout)


def make_field(rng: np.random.Generator) -> None:
    write_field(os.path.join(HERE, "field.fits.fz"), rng, (512, 512), n_galaxies=30,
                n_stars=20)


def _copy_subset(shared: str, name: str, rows_per_class: int, keep, fields: list[str]) -> None:
    source = os.path.join(shared, name)
    if not os.path.isdir(source):
        print(f"{source} not found: {name} sample not rebuilt")
        return
    target = os.path.join(HERE, name)
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(os.path.join(target, "cutouts"))
    with open(os.path.join(source, "labels.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen, counts = [], {}
    for row in rows:
        if keep(row) and counts.get(row["label"], 0) < rows_per_class:
            counts[row["label"]] = counts.get(row["label"], 0) + 1
            chosen.append(row)
    for row in chosen:
        shutil.copy(os.path.join(source, row["file"]), os.path.join(target, row["file"]))
    with open(os.path.join(target, "labels.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(chosen)


def main() -> None:
    shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "shared", "data")
    rng = np.random.default_rng(2026)
    make_simulated(rng)
    make_field(rng)
    _copy_subset(shared, "gz1", N_GZ1_PER_CLASS, lambda row: True, ["file", "objid", "label"])
    _copy_subset(shared, "mirabest", N_MIRABEST_PER_CLASS, lambda row: row["label"] != "hybrid",
                 ["file", "label", "confident", "morphology", "ra", "dec", "redshift",
                  "las_arcsec"])


if __name__ == "__main__":
    main()
