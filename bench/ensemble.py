"""What an ensemble of N members gives over one model, on one fixed test split.

Reads run directories kept by ``bench/accuracy.py --split-seed S --seeds 1,...,K --keep DIR``
(the same train / validation / test split, the training seed alone differing), puts each
window of N consecutive seeds together with :func:`galcnn.stages.train.ensemble.assemble` (what
``train --ensemble N`` does after training), runs ``predict`` over the kept test split and
scores it: accuracy, accuracy on confident sources (MiraBest), macro-F1, ECE, and how useful
the uncertainty is: the accuracy of the 80 % of test sources the model is most certain of,
ranked by confidence (the highest belief) and, for N > 1, by the members' disagreement
(``spread``, lowest first).

    python bench/ensemble.py /tmp/keep/mb-s1 --sizes 1,3,5
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import tempfile

import numpy as np

from galcnn.checkpoint import load_checkpoint
from galcnn.metrics import classification_metrics, expected_calibration_error
from galcnn.stages.predict import predict
from galcnn.stages.train import TrainOptions
from galcnn.stages.train.ensemble import assemble

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data")


def confident_files(name: str = "mirabest") -> set[str]:
    table = os.path.join(SHARED, name, "labels.csv")
    if not os.path.isfile(table):
        return set()
    with open(table, newline="") as handle:
        return {os.path.realpath(os.path.join(SHARED, name, row["file"]))
                for row in csv.DictReader(handle) if row.get("confident") == "1"}


def top_accuracy(hits: np.ndarray, certainty: np.ndarray, share: float = 0.8) -> float:
    """Accuracy over the ``share`` of samples with the highest ``certainty``."""
    keep = np.argsort(-certainty, kind="stable")[:int(round(share * len(hits)))]
    return float(hits[keep].mean())


def score(model: str, test_table: str, work: str, confident: set[str]) -> dict:
    with open(test_table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    listing = os.path.join(work, "test.list")
    with open(listing, "w") as handle:
        handle.write("".join(row["file"] + "\n" for row in rows))
    out = os.path.join(work, "beliefs.csv")
    predict(model, ["@" + listing], out, overwrite=True)
    classes = load_checkpoint(model)["card"].classes
    label_of = {os.path.realpath(row["file"]): row["label"] for row in rows}
    with open(out, newline="") as handle:
        table = [row for row in csv.DictReader(handle) if row["status"] == "ok"]
    beliefs = np.array([[float(row[f"p_{c}"]) for c in classes] for row in table])
    labels = np.array([classes.index(label_of[os.path.realpath(row["file"])]) for row in table])
    hits = beliefs.argmax(1) == labels
    metrics = classification_metrics(labels, beliefs.argmax(1), classes)
    figures = {"n": len(labels), "accuracy": float(hits.mean()),
               "macro_f1": metrics["macro_f1"],
               "ece": expected_calibration_error(beliefs, labels),
               "top80_by_confidence": top_accuracy(hits, beliefs.max(1))}
    spread = np.array([float(row["spread"] or "nan") for row in table])
    if np.isfinite(spread).all():
        figures["top80_by_agreement"] = top_accuracy(hits, -spread)
    sure = np.array([os.path.realpath(row["file"]) in confident for row in table])
    if sure.any():
        figures["confident_accuracy"] = float(hits[sure].mean())
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kept", help="folder of SPLIT-SEED run directories (one split)")
    parser.add_argument("--sizes", default="1,3,5")
    parser.add_argument("--out", default=os.path.join(HERE, "ensemble.jsonl"))
    args = parser.parse_args()
    runs = sorted((d for d in os.listdir(args.kept) if re.fullmatch(r"[a-z]+-\d+", d)),
                  key=lambda d: int(d.split("-")[1]))
    folders = [os.path.join(args.kept, d) for d in runs]
    confident = confident_files()
    summary = {}
    for size in (int(s) for s in args.sizes.split(",")):
        records = []
        for start in range(len(folders) - size + 1):
            chosen = folders[start:start + size]
            work = tempfile.mkdtemp(prefix="galcnn-ensemble-")
            try:
                if size == 1:
                    model = chosen[0]
                else:
                    model = os.path.join(work, "run")
                    assemble(model, chosen, TrainOptions(ensemble=size),
                             data=os.path.join(chosen[0], "data"))
                figures = score(model, os.path.join(chosen[0], "test.csv"), work, confident)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            figures.update(size=size, members=[os.path.basename(c) for c in chosen])
            records.append(figures)
            print(json.dumps(figures), flush=True)
            with open(args.out, "a") as handle:
                handle.write(json.dumps({"kept": args.kept, **figures}) + "\n")
        summary[size] = records
    for size, records in summary.items():
        for key in ("accuracy", "confident_accuracy", "macro_f1", "ece", "top80_by_confidence",
                    "top80_by_agreement"):
            values = [r[key] for r in records if key in r]
            if values:
                print(f"N={size} {key:20s} {np.mean(values):.3f} +- {np.std(values):.3f} "
                      f"over {len(values)}  ({', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
