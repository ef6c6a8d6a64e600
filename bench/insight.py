"""How good ``explain``, ``embed``/``similar`` and the anomaly scores are (issue 14).

Four measurements, one JSON line to ``--out`` and a summary on stdout:

``attribution``  simulated galaxies with exact masks: the fraction of the positive
                 attribution (Grad-CAM, integrated gradients) that falls inside the galaxy's
                 mask, for the trained model and for the same network with random weights
                 (the model-randomisation test of Adebayo et al. 2018); the mask's share of
                 the image is what a map blind to the galaxy would score.
``similarity``   GZ1 (shared data): each test cutout's 10 nearest training cutouts by
                 cosine distance of the embeddings, precision at 10 of the same class per
                 class, against the same search on the raw (stretched) pixels.
``anomaly``      GZ1 test cutouts with an injected artefact (a satellite trail, a saturated
                 star's bleed, a dead column, pure noise) against the same cutouts clean:
                 ROC AUC of the anomaly score; and the rare classes (merger, dont_know)
                 against ellipticals.
``throughput``   ``embed`` end to end on the test files against the model's own embedding
                 passes on the same inputs in memory.

    python bench/insight.py                     # about 10 min on 2 CPU cores
    python bench/insight.py --gz1-epochs 5 --sim-epochs 3   # a quick check of the script
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
from scipy.stats import rankdata, spearmanr

from galcnn.anomaly import knn_scores
from galcnn.attribution import grad_cam, integrated_gradients
from galcnn.checkpoint import load_checkpoint, load_model
from galcnn.data.dataset import PreparedDataset
from galcnn.data.fitsio import read_image
from galcnn.data.simulate import CLASSES, MASK_CENTRAL, simulate_cutout, write_cutout
from galcnn.inference import as_batch, dataset_embeddings
from galcnn.models import GroupPooled, create_model
from galcnn.stages.embed import EmbedOptions, embed
from galcnn.stages.prepare import PrepareOptions, prepare
from galcnn.stages.train import TrainOptions, train

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_GZ1 = os.path.join(HERE, "..", "..", "shared", "data", "gz1")


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """ROC AUC: the chance a positive scores above a negative (Mann-Whitney, ties half)."""
    ranks = rankdata(np.concatenate([positive, negative]))
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ------------------------------------------------------------------------------ attribution

def attribution(work: str, epochs: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    folder = os.path.join(work, "sim")
    for kind in CLASSES:
        os.makedirs(os.path.join(folder, kind))
        for i in range(150):
            write_cutout(os.path.join(folder, kind, f"{kind}_{i:03d}.fits"),
                         simulate_cutout(kind, rng=rng), compress=False)
    prepare([folder], os.path.join(work, "sim-prepared"))
    run = os.path.join(work, "sim-run")
    train(os.path.join(work, "sim-prepared"), run, TrainOptions(epochs=epochs, seed=seed))
    trained = load_model(run)
    card = trained.card
    held = [simulate_cutout(CLASSES[i % 4], rng=rng) for i in range(200)]
    x = torch.from_numpy(np.stack([card.preprocess.apply(c.image) for c in held]))
    masks = np.stack([c.mask == MASK_CENTRAL for c in held]).astype(np.float64)
    result = {"n": len(held), "mask_fraction": float(masks.mean()), "n_random": 5}
    models = [("trained", trained)]
    for index in range(result["n_random"]):  # one random network is a noisy baseline
        torch.manual_seed(seed + 1 + index)
        models.append((f"random{index}", GroupPooled(create_model(card.model, **card.model_args),
                                                     card.elements, card.mirror_swap).eval()))
    maps_of = {}
    for name, model in models:
        with torch.no_grad():
            target = model(x).argmax(1)
        maps_of[name] = {
            "gradcam": grad_cam(model, x, target).numpy(),
            "intgrad": np.clip(integrated_gradients(model, x, target).sum(1).numpy(), 0, None)}
    for method in ("gradcam", "intgrad"):
        fractions, correlations = [], []
        for name, _ in models:
            maps = maps_of[name][method]
            total = maps.sum((1, 2))
            inside = (maps * masks).sum((1, 2))
            fractions.append(float((inside[total > 0] / total[total > 0]).mean()))
            if name != "trained":  # Adebayo et al.: do the maps change with the weights?
                correlations.append(float(np.mean([
                    spearmanr(a.ravel(), b.ravel())[0]
                    for a, b in zip(maps_of["trained"][method], maps)])))
        result[f"trained_{method}"] = fractions[0]
        result[f"random_{method}"] = [round(f, 4) for f in fractions[1:]]
        result[f"random_{method}_mean"] = float(np.mean(fractions[1:]))
        result[f"rank_correlation_trained_random_{method}"] = float(np.mean(correlations))
    if "accuracy" in card.metrics:
        result["trained_val_accuracy"] = card.metrics["accuracy"]
    return result


# ------------------------------------------------------------------------------ GZ1

def gz1_model(work: str, epochs: int, seed: int) -> tuple[str, str]:
    prepared = os.path.join(work, "gz1-prepared")
    prepare([SHARED_GZ1], prepared, options=PrepareOptions(val_fraction=0.15,
                                                           test_fraction=0.15, seed=seed))
    run = os.path.join(work, "gz1-run")
    train(prepared, run, TrainOptions(epochs=epochs, seed=seed))
    return prepared, run


def precision_at(database: np.ndarray, labels: np.ndarray, queries: np.ndarray,
                 query_labels: np.ndarray, k: int = 10) -> np.ndarray:
    """Per query: the fraction of its ``k`` nearest database rows (cosine) of its class."""
    unit = database / np.maximum(np.linalg.norm(database, axis=1, keepdims=True), 1e-12)
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    nearest = np.argsort(-(q @ unit.T), axis=1)[:, :k]
    return (labels[nearest] == query_labels[:, None]).mean(1)


def similarity(prepared: str, run: str) -> dict:
    model = load_model(run)
    device = torch.device("cpu")
    train_set, test_set = PreparedDataset(prepared, "train"), PreparedDataset(prepared, "test")
    spaces = {"embedding": (dataset_embeddings(model, train_set, device),
                            dataset_embeddings(model, test_set, device)),
              "raw_pixels": tuple(d.batch(np.arange(len(d)))[0].reshape(len(d), -1)
                                  for d in (train_set, test_set))}
    result = {}
    for name, (database, queries) in spaces.items():
        precision = precision_at(database, train_set.labels, queries, test_set.labels)
        per_class = {c: float(precision[test_set.labels == i].mean())
                     for i, c in enumerate(test_set.classes)}
        result[name] = {"per_class": per_class, "macro": float(np.mean(list(per_class.values())))}
    result["n_queries"], result["n_database"] = len(test_set), len(train_set)
    return result


def inject(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A raw cutout ``(bands, y, x)`` with one artefact, at the image's own brightness."""
    out = image.astype(np.float32).copy()
    _, ny, nx = out.shape
    top, floor = float(np.nanmax(out)), float(np.nanmin(out))
    yy, xx = np.mgrid[0:ny, 0:nx]
    if kind == "trail":  # a straight bright line across the cutout, 1.5 px wide
        angle, offset = rng.uniform(0, np.pi), rng.uniform(-0.3, 0.3) * min(ny, nx)
        distance = np.abs((xx - nx / 2) * np.sin(angle) - (yy - ny / 2) * np.cos(angle) - offset)
        out += 0.8 * top * np.exp(-0.5 * (distance / 0.75) ** 2)
    elif kind == "bleed":  # a saturated star off centre and its bleed column
        cy, cx = rng.integers(ny // 8, ny // 4), rng.integers(nx // 8, 7 * nx // 8)
        star = np.hypot(yy - cy, xx - cx) < 3
        column = (np.abs(xx - cx) <= 1) & (np.abs(yy - cy) < ny // 3)
        out[:, star | column] = top
    elif kind == "dead_column":  # two adjacent columns read nothing
        cx = rng.integers(nx // 4, 3 * nx // 4)
        out[:, :, cx:cx + 2] = floor
    elif kind == "noise":  # no object: noise at the cutout's own level
        median, spread = float(np.median(out)), float(np.std(out)) + 1e-6
        out = rng.normal(median, spread, out.shape).astype(np.float32)
    return out


def anomalies(prepared: str, run: str, seed: int) -> dict:
    model = load_model(run)
    state = load_checkpoint(run)
    reference, summary = state["anomaly_reference"].numpy(), state["card"].anomaly
    recipe = model.card.preprocess
    test_set = PreparedDataset(prepared, "test")
    raws = [read_image(r["file"]).data for r in test_set.rows]
    labels = np.array([r["label"] for r in test_set.rows])

    def scores(images: list[np.ndarray]) -> np.ndarray:
        x = as_batch(np.stack(recipe.apply_all(images)), torch.device("cpu"))
        with torch.no_grad():
            return knn_scores(reference, model.embed(x).numpy(), summary["k"])

    rng = np.random.default_rng(seed)
    clean = scores(raws)
    result = {"k": summary["k"], "n_reference": summary["n_reference"], "n_clean": len(raws)}
    for kind in ("trail", "bleed", "dead_column", "noise"):
        result[f"auc_{kind}"] = auc(scores([inject(r, kind, rng) for r in raws]), clean)
    for rare in ("merger", "dont_know"):
        if (labels == rare).any() and (labels == "elliptical").any():
            result[f"auc_{rare}_vs_elliptical"] = auc(clean[labels == rare],
                                                      clean[labels == "elliptical"])
    return result


def throughput(prepared: str, run: str, work: str) -> dict:
    files = [r["file"] for r in PreparedDataset(prepared, "test").rows]
    model = load_model(run)
    test_set = PreparedDataset(prepared, "test")
    x = as_batch(test_set.batch(np.arange(len(test_set)))[0], torch.device("cpu"))
    with torch.inference_mode():
        model.embed(x[:16])
        started = time.perf_counter()
        for start in range(0, len(x), 16):
            model.embed(x[start:start + 16])
        model_rate = len(x) / (time.perf_counter() - started)
    out = os.path.join(work, "embeddings.fits")
    started = time.perf_counter()
    embed(run, files, out, EmbedOptions())
    end_to_end = len(files) / (time.perf_counter() - started)
    return {"n": len(files), "model_embeddings_per_s": model_rate,
            "embed_cutouts_per_s": end_to_end, "ratio": end_to_end / model_rate}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim-epochs", type=int, default=15)
    parser.add_argument("--gz1-epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=os.path.join(HERE, "insight.jsonl"))
    parser.add_argument("--parts", default="attribution,similarity,anomaly,throughput",
                        help="Which measurements, comma-separated.")
    args = parser.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    work = tempfile.mkdtemp(prefix="galcnn-insight-")
    started = time.monotonic()
    try:
        parts = args.parts.split(",")
        record = {"machine": platform.machine(), "torch": torch.__version__, "seed": args.seed,
                  "sim_epochs": args.sim_epochs, "gz1_epochs": args.gz1_epochs}
        if "attribution" in parts:
            record["attribution"] = attribution(work, args.sim_epochs, args.seed)
            print(json.dumps({"attribution": record["attribution"]}), flush=True)
        gz1_parts = [p for p in ("similarity", "anomaly", "throughput") if p in parts]
        if gz1_parts and os.path.isdir(SHARED_GZ1):
            prepared, run = gz1_model(work, args.gz1_epochs, args.seed)
            record["gz1_val_macro_f1"] = load_checkpoint(run)["card"].metrics.get("macro_f1")
            for name, measure in (("similarity", lambda: similarity(prepared, run)),
                                  ("anomaly", lambda: anomalies(prepared, run, args.seed)),
                                  ("throughput", lambda: throughput(prepared, run, work))):
                if name not in gz1_parts:
                    continue
                record[name] = measure()
                print(json.dumps({name: record[name]}), flush=True)
        elif gz1_parts:
            print("shared GZ1 data not present: similarity and anomaly skipped", file=sys.stderr)
        record["elapsed_s"] = time.monotonic() - started
        with open(args.out, "a") as handle:
            handle.write(json.dumps(record) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
