"""Training throughput of ``galcnn train`` against the model's own compute, in one run.

The figure is the ratio (end-to-end training images/s) / (forward+backward+step images/s of
the same model on the same batches already in memory): what the data pipeline, augmentation
and bookkeeping cost. Both are measured back to back, so the ratio holds on a noisy machine.

    python bench/train.py                         # shared GZ1 set, default options, CPU
    python bench/train.py --device cuda --epochs 3
    python bench/train.py --data prepared/gz1     # an already prepared set
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np
import torch
from torch.nn import functional as F

from galcnn.data.dataset import PreparedDataset, is_prepared_dataset
from galcnn.card import ModelCard
from galcnn.checkpoint import build_model, load_checkpoint
from galcnn.runtime import amp_dtype, autocast, select_device
from galcnn.stages.prepare import prepare
from galcnn.stages.train import TrainOptions, train

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_GZ1 = os.path.join(HERE, "..", "..", "shared", "data", "gz1")


def compute_rate(card: ModelCard, data: PreparedDataset, options: TrainOptions, device: torch.device,
                 n_images: int) -> float:
    """Images/s of forward + backward + optimizer step on batches held on the device."""
    torch.manual_seed(0)
    model = build_model(card).net.to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr)
    dtype = amp_dtype(device, options.amp)
    order = np.random.default_rng(0).permutation(len(data))[:n_images]
    batches = []
    for start in range(0, len(order) - options.batch_size + 1, options.batch_size):
        images, labels = data.batch(np.sort(order[start:start + options.batch_size]))
        batches.append((torch.from_numpy(images).to(device).contiguous(
            memory_format=torch.channels_last), torch.from_numpy(labels).to(device)))

    def step(x, y):
        with autocast(device, dtype):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for x, y in batches[:3]:
        step(x, y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for x, y in batches:
        step(x, y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(batches) * options.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=SHARED_GZ1,
                        help="raw cutouts with labels, or a prepared dataset")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()

    device = select_device(args.device)
    options = TrainOptions(epochs=args.epochs, device=args.device, batch_size=args.batch_size,
                           workers=args.workers, patience=999)
    with tempfile.TemporaryDirectory(prefix="galcnn-bench-") as tmp:
        data = args.data
        if not is_prepared_dataset(data):
            data = os.path.join(tmp, "prepared")
            prepare([args.data], data)
        run = os.path.join(tmp, "run")
        result = train(data, run, options)
        # the first epoch includes warm-up (allocator, cuDNN autotuning): report the last
        end_to_end = result.history[-1]["images_per_s"]
        card = load_checkpoint(run)["card"]
        train_set = PreparedDataset(data, "train")
        compute = compute_rate(card, train_set, options, device, min(len(train_set), 2048))
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else
        f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})",
        "data": os.path.abspath(args.data), "n_train": len(train_set), "arch": card.model,
        "batch_size": args.batch_size, "epochs": args.epochs,
        "end_to_end_images_per_s": round(end_to_end, 1),
        "compute_only_images_per_s": round(compute, 1),
        "ratio": round(end_to_end / compute, 3),
        "val_accuracy_after_epochs": round(result.history[-1]["val_accuracy"], 3),
        "torch": torch.__version__,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
