"""Accuracy of a training recipe on the shared catalogues: in distribution and under a shift.

Every figure comes from splits of the shared data only (the independent held-out samples are
never seen here). Three experiments, each over one or more seeds:

``random``  MiraBest FRI/FRII or GZ1: a stratified train / validation / test split
            (70 / 15 / 15 %). Early stopping and the temperature see the validation split;
            the test split is scored once at the end, so the gap between the two shows how
            much selecting on the validation split flatters it.
``flux``    MiraBest FRI/FRII: train and validate on the fainter half (by peak brightness),
            test on the brighter half, as a model meets a brighter catalogue of the same
            survey.
``faint``   MiraBest FRI/FRII the other way round: train on the brighter half, test on the
            fainter.
``both``    ``random`` and ``flux``, for MiraBest.

    python bench/accuracy.py mirabest --split both --seeds 1,2,3
    python bench/accuracy.py gz1 --seeds 1 --train epochs=20
    python bench/accuracy.py mirabest --split flux --prepare stretch=log --train width=16

``--split-seed S`` draws every seed's test and validation split from ``S``, so seeds differ
in training only (the training's own spread, without the split's binomial noise);
``--weight-map 0=0.5`` weights the loss by MiraBest's ``confident`` column (uncertain sources
count half); ``--confident-only`` keeps the sources MiraBest flags confident (the published protocol: train,
validate and test on them alone).

``--prepare KEY=VALUE`` sets a recipe field (size, fit, stretch; a stretch parameter as
stretch.NAME), ``--train KEY=VALUE`` a TrainOptions field. One JSON line per run goes to
``--out`` (default bench/accuracy.jsonl) with the recipe, options, time and figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import fields, replace

import numpy as np
from astropy.io import fits

from galcnn.data.recipe import Preprocess
from galcnn.data.stretch import Stretch
from galcnn.stages.evaluate import evaluate
from galcnn.stages.prepare import PrepareOptions, prepare
from galcnn.stages.train import TrainOptions, train

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data")
CLASSES = {"mirabest": ["FRI", "FRII"], "gz1": None}


def read_table(name: str) -> list[dict]:
    """The shared label table, MiraBest without hybrids, with each row's peak brightness."""
    folder = os.path.join(SHARED, name)
    with open(os.path.join(folder, "labels.csv"), newline="") as handle:
        rows = [dict(row, path=os.path.join(folder, row["file"])) for row in csv.DictReader(handle)]
    if name == "mirabest":
        rows = [row for row in rows if row["label"] in ("FRI", "FRII")]
        for row in rows:
            with fits.open(row["path"]) as hdus:
                row["peak"] = float(np.nanmax(hdus[1].data))
    return rows


def parse_weight_map(text: str) -> dict[str, float]:
    return {k: float(v) for k, _, v in (item.partition("=") for item in text.split(","))}


def parse_settings(pairs: list[str]) -> dict:
    settings = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return settings


def recipe_from(settings: dict) -> Preprocess:
    stretch = {k.split(".", 1)[1]: v for k, v in settings.items() if k.startswith("stretch.")}
    if "stretch" in settings:
        stretch["name"] = settings["stretch"]
    values = {k: v for k, v in settings.items() if not k.startswith("stretch")}
    if "size" in values and isinstance(values["size"], int):
        values["size"] = (values["size"], values["size"])
    return replace(Preprocess(), stretch=Stretch(**stretch), **values)


def write_labels(rows: list[dict], path: str) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "confident"])
        for row in rows:
            writer.writerow([row["path"], row["label"], row.get("confident", "")])


def score(model: str, rows: list[dict], work: str, name: str) -> dict:
    """Accuracy (all, confident), macro-F1 and per-class recall of ``model`` on raw ``rows``."""
    table = os.path.join(work, f"{name}.csv")
    write_labels(rows, table)
    inputs = os.path.join(work, f"{name}.list")
    with open(inputs, "w") as handle:
        handle.write("\n".join(row["path"] for row in rows) + "\n")
    result = evaluate(model, "@" + inputs, labels=table, id_column="file", label_column="label")
    metrics = result.metrics
    figures = {"n": len(result.labels), "accuracy": metrics["accuracy"],
               "macro_f1": metrics["macro_f1"], "ece": metrics["ece"],
               "recall": {c: v["recall"] for c, v in metrics["per_class"].items()}}
    confident = {os.path.realpath(r["path"]) for r in rows if r.get("confident") == "1"}
    if confident:
        keep = np.array([os.path.realpath(f) in confident for f in result.files])
        hits = result.beliefs.argmax(1) == result.labels
        figures["confident_accuracy"] = float(hits[keep].mean())
        figures["n_confident"] = int(keep.sum())
    return figures


def split_rows(rows: list[dict], how: str, seed: int) -> tuple[list[dict], list[dict]]:
    """(rows to prepare into train + validation, test rows)."""
    rng = np.random.default_rng(1000 + seed)
    if how in ("flux", "faint"):
        median = float(np.median([r["peak"] for r in rows]))
        faint = [r for r in rows if r["peak"] < median]
        bright = [r for r in rows if r["peak"] >= median]
        return (faint, bright) if how == "flux" else (bright, faint)
    test = []
    by_class: dict[str, list[dict]] = {}
    for row in rows:
        by_class.setdefault(row["label"], []).append(row)
    for members in by_class.values():
        order = rng.permutation(len(members))
        test += [members[i] for i in order[:round(0.15 * len(members))]]
    chosen = {id(r) for r in test}
    return [r for r in rows if id(r) not in chosen], test


def run_once(name: str, how: str, seed: int, recipe: Preprocess, train_settings: dict,
             rows: list[dict], keep: str | None, split_seed: int | None = None,
             weight_map: dict | None = None) -> dict:
    work = tempfile.mkdtemp(prefix="galcnn-accuracy-")
    split_seed = seed if split_seed is None else split_seed
    try:
        fit_rows, test_rows = split_rows(rows, how, split_seed)
        labels = os.path.join(work, "fit.csv")
        write_labels(fit_rows, labels)
        listing = os.path.join(work, "fit.list")
        with open(listing, "w") as handle:
            handle.write("\n".join(r["path"] for r in fit_rows) + "\n")
        started = time.monotonic()
        val_fraction = 0.15 / 0.85 if how == "random" else 0.15
        prepare(["@" + listing], os.path.join(work, "prepared"), labels=labels,
                id_column="file", label_column="label", classes=CLASSES[name],
                options=PrepareOptions(preprocess=recipe, val_fraction=val_fraction,
                                       seed=split_seed,
                                       weight_column="confident" if weight_map else None,
                                       weight_map=weight_map))
        options = replace(TrainOptions(seed=seed), **train_settings)
        result = train(os.path.join(work, "prepared"), os.path.join(work, "run"), options)
        elapsed = time.monotonic() - started
        model = os.path.join(work, "run", "best.pt")
        record = {"set": name, "split": how, "seed": seed, "split_seed": split_seed,
                  "recipe": recipe.to_dict(),
                  "train": train_settings, "elapsed_s": round(elapsed, 1),
                  "epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                  "val": {k: result.metrics.get(k) for k in
                          ("accuracy", "macro_f1", "ece", "temperature")},
                  "test": score(model, test_rows, work, "test")}
        if how in ("flux", "faint"):
            record["test_quarters"] = quarter_accuracy(model, test_rows, work)
        if keep:
            target = os.path.join(keep, f"{how}-{seed}")
            shutil.copytree(os.path.join(work, "run"), target, dirs_exist_ok=True)
            shutil.copytree(os.path.join(work, "prepared"), os.path.join(target, "data"),
                            dirs_exist_ok=True)
            write_labels(test_rows, os.path.join(target, "test.csv"))
        return record
    finally:
        shutil.rmtree(work, ignore_errors=True)


def quarter_accuracy(model: str, rows: list[dict], work: str) -> list[float]:
    """Test accuracy in each half of the (bright) test rows by peak: does it fall with flux?"""
    ordered = sorted(rows, key=lambda r: r["peak"])
    half = len(ordered) // 2
    return [score(model, part, work, f"part{i}")["accuracy"]
            for i, part in enumerate((ordered[:half], ordered[half:]))]


def summarise(records: list[dict]) -> None:
    for how in sorted({r["split"] for r in records}):
        chosen = [r for r in records if r["split"] == how]
        for key in ("accuracy", "confident_accuracy", "macro_f1"):
            for where in ("val", "test"):
                values = [r[where].get(key) for r in chosen if r[where].get(key) is not None]
                if values:
                    print(f"{how:6s} {where:4s} {key:20s} {np.mean(values):.3f} "
                          f"+- {np.std(values):.3f}  ({', '.join(f'{v:.3f}' for v in values)})")
        print(f"{how:6s} time per run {np.mean([r['elapsed_s'] for r in chosen]):.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("set", choices=sorted(CLASSES))
    parser.add_argument("--split", choices=["random", "flux", "faint", "both"], default="random")
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--split-seed", type=int,
                        help="one test and validation split for every seed")
    parser.add_argument("--confident-only", action="store_true",
                        help="MiraBest: confident sources only (the published protocol)")
    parser.add_argument("--weight-map", type=parse_weight_map,
                        help="MiraBest: weight the loss by the confident column, mapped "
                             "so (e.g. 0=0.5)")
    parser.add_argument("--prepare", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--train", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--label", default="", help="a name for this variant in the output")
    parser.add_argument("--keep", help="copy each run directory under this folder")
    parser.add_argument("--out", default=os.path.join(HERE, "accuracy.jsonl"))
    args = parser.parse_args()
    if not os.path.isdir(os.path.join(SHARED, args.set)):
        sys.exit(f"shared {args.set} data not found under {SHARED}")
    train_settings = parse_settings(args.train)
    unknown = set(train_settings) - {f.name for f in fields(TrainOptions)}
    if unknown:
        sys.exit(f"unknown TrainOptions fields: {', '.join(sorted(unknown))}")
    recipe = recipe_from(parse_settings(args.prepare))
    rows = read_table(args.set)
    if args.confident_only:
        rows = [row for row in rows if row.get("confident") == "1"]
    splits = ["random", "flux"] if args.split == "both" else [args.split]
    records = []
    for how in splits:
        for seed in (int(s) for s in args.seeds.split(",")):
            record = run_once(args.set, how, seed, recipe, train_settings, rows, args.keep,
                              args.split_seed, args.weight_map)
            record.update(label=args.label, confident_only=args.confident_only,
                          weight_map=args.weight_map, machine=platform.machine(), cpus=os.cpu_count())
            records.append(record)
            with open(args.out, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            print(json.dumps({k: record[k] for k in ("split", "seed", "elapsed_s", "best_epoch",
                                                     "val", "test")}), flush=True)
    summarise(records)


if __name__ == "__main__":
    main()
