"""Quality and throughput of ``galcnn segment``, measured in one run.

Quality: a U-Net is trained on simulated cutouts with exact masks (galcnn.data.simulate), then
simulated fields (exact class maps) from bright to faint galaxies are segmented. Against it, a
classical detector at the same settings (sigma-clipped background and noise, the same 3x3
smoothing, a 2-sigma threshold, 8-connected footprints, the same minimum area:
galcnn.data.masks.detect). Reported per signal-to-noise bin: galaxy-pixel IoU (classical: every
detected pixel counts as galaxy, it has no classes), per-class IoU of the U-Net, and object
completeness (galaxies matched one to one by a detection whose centroid lies within 3 pixels
of the true centre) and purity (detections so matched to a real galaxy or star).

Throughput: megapixels/s of ``segment`` end-to-end on a 4096 x 4096 image (reading, stretch,
tiling, inference, blending, labels, catalogue, FITS writing) against the U-Net's forward pass
on the same tiles already in memory (ratio), and the peak memory of the end-to-end run in a
fresh process.

    python bench/segment.py                    # CPU; about 10 minutes on 2 cores
    python bench/segment.py --device cuda --size 8192
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from astropy.io import fits
from skimage import measure

from galcnn.checkpoint import load_model
from galcnn.data.masks import detect
from galcnn.stages.prepare import PrepareOptions, prepare
from galcnn.runtime import select_device
from galcnn.stages.segment import Segmenter, SegmentOptions, segment
from galcnn.data.simulate import CLASSES, simulate_cutout, simulate_field, write_cutout
from galcnn.stages.train import TrainOptions, train

SNR_BINS = [(3.0, 6.0), (6.0, 12.0), (12.0, 25.0), (25.0, 60.0)]


def train_unet(tmp: str, n_per_class: int, epochs: int, run: str | None = None) -> str:
    rng = np.random.default_rng(0)
    root = os.path.join(tmp, "cutouts")
    for kind in CLASSES:
        os.makedirs(os.path.join(root, kind), exist_ok=True)
        for i in range(n_per_class):
            cutout = simulate_cutout(kind, size=64, snr=float(rng.uniform(3.0, 60.0)), rng=rng)
            write_cutout(os.path.join(root, kind, f"{kind}_{i:04d}.fits"), cutout,
                         compress=False)
    prepared = os.path.join(tmp, "prepared")
    prepare([root], prepared, options=PrepareOptions(masks="hdu:MASK"))
    run = run or os.path.join(tmp, "unet")
    train(prepared, run, TrainOptions(task="segment", epochs=epochs))
    return run


def _objects_found(labels: np.ndarray, objects: list[dict], radius: float = 3.0
                   ) -> tuple[float, float]:
    """Completeness over galaxies and purity over detections, matching one to one.

    A detection matches the nearest unmatched true object (galaxy or star) whose centre lies
    within ``radius`` pixels of the detection's centroid, so a footprint that merges several
    objects finds at most one of them.
    """
    regions = measure.regionprops(labels)
    centres = np.array([[o["x"], o["y"]] for o in objects])
    taken = np.zeros(len(objects), dtype=bool)
    n_matched = 0
    for region in regions:
        y, x = region.centroid
        distance = np.hypot(centres[:, 0] - x, centres[:, 1] - y)
        distance[taken] = np.inf
        best = int(np.argmin(distance))
        if distance[best] <= radius:
            taken[best] = True
            n_matched += 1
    galaxies = np.array([o["kind"] != "star" for o in objects])
    completeness = taken[galaxies].sum() / max(galaxies.sum(), 1)
    purity = n_matched / len(regions) if regions else 1.0
    return float(completeness), float(purity)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else float("nan")


def quality(run: str, tmp: str, n_fields: int, device: str) -> list[dict]:
    pixel_classes = load_model(run).card.classes
    rows = []
    for low, high in SNR_BINS:
        sums: dict[str, list[float]] = {}
        for index in range(n_fields):
            rng = np.random.default_rng([int(low * 10), index])
            image, class_map, objects, header = simulate_field(
                (384, 384), n_galaxies=14, n_stars=8, snr_range=(low, high), rng=rng)
            path = os.path.join(tmp, f"field_{low:g}_{index}.fits")
            fits.PrimaryHDU(image, header=header).writeto(path, overwrite=True)
            out = os.path.join(tmp, "seg-quality")
            segment(run, [path], out, SegmentOptions(device=device, overwrite=True))
            stem = os.path.join(out, os.path.basename(path)[:-5])
            mask = fits.getdata(stem + ".seg.fits", "MASK")
            unet_labels = fits.getdata(stem + ".seg.fits", "LABELS")
            classic = detect(image[None], nsigma=2.0, min_pixels=5)
            truth = class_map > 0
            galaxy_pixels = (mask >= 1) & (mask <= len(CLASSES))
            values = {"unet_galaxy_iou": _iou(galaxy_pixels, truth),
                      "classic_galaxy_iou": _iou(classic > 0, truth)}
            values["unet_completeness"], values["unet_purity"] = _objects_found(unet_labels, objects)
            values["classic_completeness"], values["classic_purity"] = _objects_found(classic, objects)
            for c, name in enumerate(CLASSES, start=1):  # class_map: 1 + CLASSES.index
                if (class_map == c).any():
                    values[f"iou_{name}"] = _iou(mask == pixel_classes.index(name),
                                                 class_map == c)
            for key, value in values.items():
                sums.setdefault(key, []).append(value)
        row = {"snr": f"{low:g}-{high:g}",
               **{k: round(float(np.nanmean(v)), 3) for k, v in sums.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def big_image(path: str, size: int) -> None:
    """A ``size`` x ``size`` mosaic of simulated 512 px fields (each with its own objects and
    noise), with the WCS of the first; rendering every object on the full frame would take
    longer than the benchmark."""
    block = 512
    n = -(-size // block)
    rng = np.random.default_rng(7)
    rows = []
    header = None
    for _ in range(n):
        row = []
        for _ in range(n):
            image, _, _, field_header = simulate_field((block, block), n_galaxies=12,
                                                       n_stars=6, rng=rng)
            header = header or field_header
            row.append(image)
        rows.append(np.concatenate(row, axis=1))
    mosaic = np.concatenate(rows, axis=0)[:size, :size]
    fits.PrimaryHDU(mosaic, header=header).writeto(path, overwrite=True)


def _peak_rss_kib() -> int:
    """VmHWM of this process (``ru_maxrss`` would include the parent's size before exec)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def end_to_end(run: str, path: str, out: str, tile: int, device: str, batch: int) -> dict:
    started = time.perf_counter()
    result = segment(run, [path], out, SegmentOptions(tile=tile, device=device, overwrite=True,
                                                      batch_size=batch))
    seconds = time.perf_counter() - started
    peak = _peak_rss_kib() / 1024
    return {"seconds": seconds, "megapixels": result.megapixels, "objects": result.n_objects,
            "peak_rss_mib": peak}


def forward_only(run: str, shape: tuple[int, int], tile: int, device_name: str,
                 batch: int) -> float:
    """Seconds of the forward passes of exactly what segment runs (the U-Net pooled over its
    symmetry group, through its Predictor: device, layout, precision) over the same number
    and size of tiles, already in memory."""
    segmenter = Segmenter.load(run, device=device_name)
    tile = -(-tile // segmenter.multiple) * segmenter.multiple
    halo = segmenter.halo(None)
    n_tiles = (-(-shape[0] // tile)) * (-(-shape[1] // tile))
    n_bands = segmenter.card.preprocess.n_bands
    x = np.random.default_rng(0).normal(
        size=(batch, n_bands, tile + 2 * halo, tile + 2 * halo)).astype(np.float32)
    segmenter.predictor.pixel_probabilities(x[:1])
    if segmenter.predictor.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    done = 0
    while done < n_tiles:
        n = min(batch, n_tiles - done)
        segmenter.predictor.pixel_probabilities(x[:n])
        done += n
    if segmenter.predictor.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="A U-Net run directory: used when it exists, else "
                                        "trained there (default: a temporary one).")
    parser.add_argument("--per-class", type=int, default=150, help="Training cutouts per class.")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--fields", type=int, default=3, help="Fields per SNR bin.")
    parser.add_argument("--size", type=int, default=4096, help="Side of the throughput image.")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--end-to-end-only", nargs=2, metavar=("MODEL", "IMAGE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.end_to_end_only:
        model, image = args.end_to_end_only
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(end_to_end(model, image, tmp, args.tile, args.device,
                                        args.batch_size)))
        return
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        run = args.model if args.model and os.path.isdir(args.model) else \
            train_unet(tmp, args.per_class, args.epochs, args.model)
        report: dict = {"device": str(select_device(args.device)),
                        "threads": torch.get_num_threads()}
        if not args.skip_quality:
            report["quality"] = quality(run, tmp, args.fields, args.device)
        if args.skip_throughput:
            print(json.dumps(report, indent=2))
            return
        image = os.path.join(tmp, "big.fits")
        big_image(image, args.size)
        child = subprocess.run([sys.executable, __file__, "--end-to-end-only", run, image,
                                "--tile", str(args.tile), "--device", args.device,
                                "--batch-size", str(args.batch_size)],
                               capture_output=True, text=True, check=True)
        e2e = json.loads(child.stdout.strip().splitlines()[-1])
        forward = forward_only(run, (args.size, args.size), args.tile, args.device,
                               args.batch_size)
        megapixels = e2e["megapixels"]
        report["throughput"] = {
            "image": f"{args.size}x{args.size}", "tile": args.tile,
            "end_to_end_mpix_per_s": round(megapixels / e2e["seconds"], 3),
            "forward_mpix_per_s": round(megapixels / forward, 3),
            "ratio": round(forward / e2e["seconds"], 3),
            "objects": e2e["objects"], "peak_rss_mib": round(e2e["peak_rss_mib"]),
            "image_mib": round(args.size * args.size * 4 / 2**20),
        }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
