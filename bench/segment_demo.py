"""How the README's segment demo does on ``sample_data/field.fits.fz``, against its truth.

The field holds 30 galaxies and 20 stars with their true positions and kinds (table
``OBJECTS``) and the exact class of every galaxy pixel (``CLASSMAP``). Given the output
directory of ``galcnn segment`` on it, this reports, matching by footprint (the object of the
label map under each true centre):

- galaxies found: a detection holds the galaxy's centre and no other true object's;
- merged: true objects that share their detection with another true object;
- class accuracy: found galaxies whose catalogue ``predicted`` class is their true kind;
- stars found on their own and labelled ``other``;
- spurious: detections that hold no true object's centre;
- galaxy-pixel IoU of the mask (any galaxy class) and per-class pixel IoU.

    python bench/segment_demo.py segmented [sample_data/field.fits.fz]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import Counter

import numpy as np
from astropy.io import fits


def score(out_dir: str, field: str) -> dict:
    with fits.open(field) as hdul:
        truth = hdul["OBJECTS"].data
        class_map = hdul["CLASSMAP"].data.astype(np.int64)
        true_classes = hdul["CLASSMAP"].header["CLASSES"].split(",")
    name = os.path.basename(field).split(".")[0]
    with fits.open(os.path.join(out_dir, f"{name}.seg.fits")) as hdul:
        labels = hdul["LABELS"].data.astype(np.int64)
        mask = hdul["MASK"].data.astype(np.int64)
        pixel_classes = hdul[0].header["CLASSES"].split(",")
    with open(os.path.join(out_dir, f"{name}.cat.csv"), newline="") as handle:
        catalogue = {int(row["id"]): row for row in csv.DictReader(handle)}

    kinds = [str(k).strip() for k in truth["kind"]]
    centres = [(int(round(float(y))), int(round(float(x)))) for x, y in
               zip(truth["x"], truth["y"])]
    under = [int(labels[y, x]) for y, x in centres]
    sharing = Counter(label for label in under if label > 0)
    galaxies = [i for i, kind in enumerate(kinds) if kind != "star"]
    stars = [i for i, kind in enumerate(kinds) if kind == "star"]
    alone = [i for i in range(len(kinds)) if under[i] > 0 and sharing[under[i]] == 1]
    found = [i for i in galaxies if i in alone]
    right = [i for i in found if catalogue[under[i]]["predicted"] == kinds[i]]
    stars_other = [i for i in stars if i in alone and catalogue[under[i]]["predicted"] == "other"]
    confusion = Counter((kinds[i], catalogue[under[i]]["predicted"]) for i in found)

    # pixel IoU against the exact class map (classes by name; stars are background there)
    by_name = {name: k for k, name in enumerate(pixel_classes)}
    iou = {}
    truth_galaxy, mask_galaxy = class_map > 0, np.isin(
        mask, [by_name[c] for c in true_classes if c in by_name])
    iou["galaxy pixels"] = _iou(truth_galaxy, mask_galaxy)
    for k, cls in enumerate(true_classes, start=1):
        if cls in by_name:
            iou[cls] = _iou(class_map == k, mask == by_name[cls])
    return {"galaxies": len(galaxies), "found": len(found), "right_class": len(right),
            "merged": sum(1 for i in range(len(kinds)) if under[i] > 0 and sharing[under[i]] > 1),
            "missed": sum(1 for i in galaxies if under[i] == 0),
            "stars": len(stars), "stars_other": len(stars_other),
            "detections": len(catalogue),
            "spurious": len(set(catalogue) - set(under)),
            "confusion": dict(confusion), "iou": iou}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else float("nan")


def report(result: dict) -> str:
    g = result["galaxies"]
    lines = [
        f"galaxies found on their own: {result['found']}/{g} "
        f"({result['found'] / g:.0%}); missed {result['missed']}, in merged detections "
        f"{result['merged']} true objects",
        f"class accuracy of found galaxies: {result['right_class']}/{result['found']} "
        f"({result['right_class'] / max(result['found'], 1):.0%})",
        f"stars on their own labelled other: {result['stars_other']}/{result['stars']}",
        f"detections: {result['detections']}, spurious (no true centre): {result['spurious']}",
        "pixel IoU: " + ", ".join(f"{k} {v:.3f}" for k, v in result["iou"].items()),
        "found galaxies, true -> predicted: " + ", ".join(
            f"{t}->{p} {n}" for (t, p), n in sorted(result["confusion"].items())),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="galcnn segment's output directory")
    parser.add_argument("field", nargs="?", default=os.path.join(
        os.path.dirname(__file__), "..", "sample_data", "field.fits.fz"))
    args = parser.parse_args(argv)
    print(report(score(args.out_dir, args.field)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
