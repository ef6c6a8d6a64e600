"""Throughput and memory of ``galcnn predict`` against the model's own forward pass, in one run.

The figure is the ratio (end-to-end cutouts/s: FITS reading, stretching, batching, inference,
CSV writing) / (forward passes/s of the same model on the same batches already in memory).
Peak memory is measured in fresh processes for 10x and for ~80x more inputs than one batch:
bounded streaming means the two peaks are about the same.

    python bench/predict.py                      # shared GZ1 files, CPU
    python bench/predict.py --model runs/gz1 --device cuda --batch-size 512
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from galcnn.checkpoint import load_model
from galcnn.data.dataset import PreparedDataset
from galcnn.data.inputs import expand_inputs
from galcnn.inference import as_batch, forward
from galcnn.runtime import amp_dtype, select_device
from galcnn.stages.predict import PredictOptions, predict
from galcnn.stages.prepare import PrepareOptions, prepare
from galcnn.stages.train import TrainOptions, train

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_GZ1 = os.path.join(HERE, "..", "..", "shared", "data", "gz1")


def quick_model(data_dir: str, tmp: str) -> str:
    """A default-architecture model trained for one epoch (throughput does not need a good one)."""
    prepared = os.path.join(tmp, "train-prepared")
    prepare([data_dir], prepared)
    run = os.path.join(tmp, "run")
    train(prepared, run, TrainOptions(epochs=1))
    return run


def forward_rate(model_path: str, files: list[str], batch_size: int, device: torch.device,
                 tmp: str) -> float:
    """Forward passes/s of the validated model (pooled over its symmetry group, as predict
    runs it) on the same cutouts, prepared and held on the device."""
    model = load_model(model_path, device).to(memory_format=torch.channels_last)
    listing = os.path.join(tmp, "files.txt")
    with open(listing, "w") as handle:
        handle.writelines(f"{f}\n" for f in files)
    prepared = os.path.join(tmp, "predict-prepared")
    prepare([f"@{listing}"], prepared, no_labels=True,
            options=PrepareOptions(model.card.preprocess, val_fraction=0.0))
    data = PreparedDataset(prepared)
    batches = [as_batch(data.batch(np.arange(i, min(i + batch_size, len(data))))[0], device)
               for i in range(0, len(data), batch_size)]
    dtype = amp_dtype(device)
    for x in batches[:2]:
        forward(model, x, dtype)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for x in batches:
        torch.softmax(forward(model, x, dtype), 1).cpu()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(data) / (time.perf_counter() - start)


def peak_memory_mb(model: str, files: list[str], batch_size: int, device: str, tmp: str) -> dict:
    """Peak RSS (MB) of a fresh process predicting ``files`` (main process; reading workers).

    The main figure is VmHWM from /proc: ``ru_maxrss`` of a child started from this process
    would include this (large) process's size from before ``exec``."""
    listing = os.path.join(tmp, f"mem-{len(files)}.txt")
    with open(listing, "w") as handle:
        handle.writelines(f"{f}\n" for f in files)
    code = ("import json, resource, sys; "
            "from galcnn.stages.predict import predict, PredictOptions; "
            f"predict({model!r}, ['@{listing}'], {os.path.join(tmp, 'mem.csv')!r}, "
            f"PredictOptions(batch_size={batch_size}, device={device!r}), overwrite=True); "
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]; "
            "peak = int(hwm[0].split()[1]) if hwm else "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            "print(json.dumps([peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    main_kb, child_kb = json.loads(done.stdout.strip().splitlines()[-1])
    return {"inputs": len(files), "main_mb": round(main_kb / 1024), "worker_mb": round(child_kb / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=SHARED_GZ1, help="cutouts to predict")
    parser.add_argument("--model", help="checkpoint or run (default: a 1-epoch model on --data)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    device = select_device(args.device)
    files = [path for path, _ in expand_inputs([args.data])]
    with tempfile.TemporaryDirectory(prefix="galcnn-bench-") as tmp:
        model = args.model or quick_model(args.data, tmp)
        out = os.path.join(tmp, "predictions.csv")
        start = time.perf_counter()
        result = predict(model, files, out, PredictOptions(batch_size=args.batch_size,
                                                           device=args.device))
        end_to_end = result.n_ok / (time.perf_counter() - start)
        compute = forward_rate(model, files, args.batch_size, device, tmp)
        small = peak_memory_mb(model, files[: 10 * args.batch_size], args.batch_size,
                               args.device, tmp)
        large = peak_memory_mb(model, files, args.batch_size, args.device, tmp)
    print(json.dumps({
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else
        f"cpu ({torch.get_num_threads()} threads)",
        "inputs": len(files), "failed": result.n_failed, "batch_size": args.batch_size,
        "end_to_end_cutouts_per_s": round(end_to_end, 1),
        "forward_only_cutouts_per_s": round(compute, 1),
        "ratio": round(end_to_end / compute, 3),
        "peak_memory": [small, large], "torch": torch.__version__}, indent=2))


if __name__ == "__main__":
    main()
