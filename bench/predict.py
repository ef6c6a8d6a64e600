"""Throughput and memory of ``galcnn predict`` against its physical limit, in one run.

On the same files: ``read`` (astropy opening each file and reading its image over all usable
cores, bench/limits.py), ``model`` (forward passes/s of the validated model, pooled over its
symmetry group as predict runs it, on batches already in memory, all threads or on the
device), ``limit`` (``1/(1/read + 1/model)`` on a CPU, where both share the cores;
``min(read, model)`` on a GPU) and the end-to-end rate of ``predict`` with default options.

Memory: the peak resident size of the process plus its reading workers, sampled from /proc,
for 1,000 and for 100,000 inputs (hard links to the shared files, as distinct inputs), of
predict writing CSV, predict writing FITS (the final table included) and embed (a FITS table
of the default model's vectors); and a 100,000-input predict run killed half-way and resumed.
The predict scale runs use a small model (width 8): streaming memory does not depend on the
network.

    python bench/predict.py                       # shared GZ1 files, CPU
    python bench/predict.py --device cuda --batch-size 512
    python bench/predict.py --skip-scale          # throughput only
    python bench/predict.py --skip-throughput     # memory only
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from limits import limit, read_rate

from galcnn.checkpoint import load_model
from galcnn.data.dataset import PreparedDataset
from galcnn.data.inputs import expand_inputs
from galcnn.inference import as_batch, forward
from galcnn.runtime import amp_dtype, inference_batch_size, select_device, usable_cpus
from galcnn.stages.predict import PredictOptions, predict
from galcnn.stages.prepare import PrepareOptions, prepare
from galcnn.stages.train import TrainOptions, train

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_GZ1 = os.path.join(HERE, "..", "..", "shared", "data", "gz1")


def quick_model(data_dir: str, tmp: str, name: str, **changes) -> str:
    """A model trained for one epoch (throughput does not need a good one)."""
    prepared = os.path.join(tmp, "train-prepared")
    if not os.path.exists(prepared):
        prepare([data_dir], prepared)
    run = os.path.join(tmp, name)
    train(prepared, run, TrainOptions(epochs=1, **changes))
    return run


def model_rate(model_path: str, files: list[str], batch_size: int, device: torch.device,
               tmp: str) -> float:
    """Forward passes/s of the validated model (pooled over its symmetry group, as predict
    runs it) on the same cutouts, prepared and held on the device."""
    model = load_model(model_path, device).to(memory_format=torch.channels_last)
    listing = os.path.join(tmp, "files.txt")
    with open(listing, "w") as handle:
        handle.writelines(f"{f}\n" for f in files)
    prepared = os.path.join(tmp, "predict-prepared")
    prepare([f"@{listing}"], prepared, no_labels=True, overwrite=True,
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


def _tree_rss_kib(pid: int) -> int:
    """Resident size of a process and all its descendants, from /proc."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as handle:
                total += next(int(line.split()[1]) for line in handle
                              if line.startswith("VmRSS"))
            with open(f"/proc/{current}/task/{current}/children") as handle:
                stack.extend(int(child) for child in handle.read().split())
        except (OSError, StopIteration):
            continue
    return total


def run_sampled(command: list[str], kill_after: float | None = None) -> dict:
    """Run a command, sampling the resident size of its process tree every 50 ms; optionally
    send SIGKILL to the whole tree after ``kill_after`` seconds."""
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    peak, started = 0, time.perf_counter()
    while process.poll() is None:
        peak = max(peak, _tree_rss_kib(process.pid))
        if kill_after is not None and time.perf_counter() - started > kill_after:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            break
        time.sleep(0.05)
    out, err = process.communicate()
    return {"returncode": process.returncode, "seconds": time.perf_counter() - started,
            "peak_mib": round(peak / 1024), "stdout": out, "stderr": err[-2000:]}


def scale_inputs(files: list[str], n: int, tmp: str) -> str:
    """A list file of ``n`` distinct inputs: hard links to ``files``, cycled."""
    folder = os.path.join(tmp, f"links-{n}")
    os.makedirs(folder, exist_ok=True)
    listing = os.path.join(tmp, f"links-{n}.txt")
    with open(listing, "w") as handle:
        for i in range(n):
            link = os.path.join(folder, f"{i:06d}.fits")
            if not os.path.exists(link):
                os.link(files[i % len(files)], link)
            handle.write(link + "\n")
    return listing


def _table_rows(path: str) -> list:
    from astropy.table import Table

    return list(Table.read(path)["file"])


def scale(models: dict[str, str], files: list[str], tmp: str, sizes: list[int],
          batch_size: int, device: str, commands: tuple[str, ...] = ("embed", "predict")
          ) -> list[dict]:
    """Peak memory of predict (CSV, then FITS: the final table included) and embed (a FITS
    table of vectors) over ``sizes`` distinct inputs; the largest predict run is also killed
    half-way and resumed."""
    rows = []
    runs = [("embed", "fits", models["embed"]), ("predict", "fits", models["small"]),
            ("predict", "csv", models["small"])]
    runs = [run for run in runs if run[0] in commands]
    for n in sizes:
        listing = scale_inputs(files, n, tmp)
        for command_name, fmt, model in runs:
            out = os.path.join(tmp, f"scale-{command_name}-{n}.{fmt}")
            command = [sys.executable, "-m", "galcnn", "-q", command_name, model,
                       f"@{listing}", "-o", out, "--batch-size", str(batch_size),
                       "--device", device]
            whole = run_sampled(command + ["--overwrite"])
            row = {"command": f"{command_name} -> {fmt}", "inputs": n,
                   "peak_mib": whole["peak_mib"], "seconds": round(whole["seconds"], 1),
                   "exit": whole["returncode"], "output_mib": round(
                       os.path.getsize(out) / 2**20, 1) if os.path.exists(out) else None}
            if fmt == "fits" and whole["returncode"] == 0:
                row["rows"] = len(_table_rows(out))
            if command_name == "embed" and whole["returncode"] == 0:
                from astropy.io import fits
                row["embdim"] = fits.getval(out, "EMBDIM", ext=1)
            if n == max(sizes) and fmt == "csv":  # kill half-way, resume, and check the rows
                os.remove(out)
                killed = run_sampled(command, kill_after=whole["seconds"] / 2)
                resumed = run_sampled(command + ["--resume"])
                with open(out) as handle:
                    lines = handle.read().splitlines()[1:]
                files_seen = [line.split(",")[1] for line in lines]
                row.update(killed_exit=killed["returncode"], resume_exit=resumed["returncode"],
                           resume_peak_mib=resumed["peak_mib"], rows_after_resume=len(lines),
                           distinct_files=len(set(files_seen)))
            if os.path.exists(out):
                os.remove(out)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def throughput(model: str, files: list[str], batch_size: int, device: torch.device, tmp: str,
               args: argparse.Namespace) -> dict:
    """predict's end-to-end rate beside the read rate and the model's own rate."""
    read = read_rate(files, usable_cpus())
    start = time.perf_counter()
    result = predict(model, files, os.path.join(tmp, "predictions.csv"),
                     PredictOptions(batch_size=args.batch_size, device=args.device))
    end_to_end = result.n_ok / (time.perf_counter() - start)
    model_per_s = model_rate(model, files, batch_size, device, tmp)
    best = limit(read, model_per_s, device.type)
    return {"failed": result.n_failed, "read_per_s": round(read, 1),
            "model_per_s": round(model_per_s, 1), "limit_per_s": round(best, 1),
            "end_to_end_per_s": round(end_to_end, 1),
            "ratio_to_limit": round(end_to_end / best, 3),
            "ratio_to_model": round(end_to_end / model_per_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=SHARED_GZ1, help="cutouts to predict")
    parser.add_argument("--model", help="checkpoint or run (default: a 1-epoch model on --data)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: predict's own (16 on a CPU, 256 on a GPU)")
    parser.add_argument("--scale", default="1000,100000", help="input counts of the memory runs")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--scale-commands", default="embed,predict",
                        help="which commands the memory runs measure")
    parser.add_argument("--skip-throughput", action="store_true",
                        help="memory runs only (their figures hold on a busy machine)")
    args = parser.parse_args()
    device = select_device(args.device)
    batch_size = inference_batch_size(args.batch_size, device)
    files = [path for path, _ in expand_inputs([args.data])]
    report: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else
                    f"cpu ({torch.get_num_threads()} threads)", "inputs": len(files),
                    "batch_size": batch_size, "torch": torch.__version__}
    with tempfile.TemporaryDirectory(prefix="galcnn-bench-") as tmp:
        model = args.model or quick_model(args.data, tmp, "run")
        if not args.skip_throughput:
            report.update(throughput(model, files, batch_size, device, tmp, args))
            print(json.dumps(report, indent=2), flush=True)
        if not args.skip_scale:
            small = quick_model(args.data, tmp, "small", width=8)
            report["scale"] = scale({"small": small, "embed": model}, files, tmp,
                                    [int(n) for n in args.scale.split(",")], batch_size,
                                    args.device, tuple(args.scale_commands.split(",")))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
