"""galcnn on a GPU in one run: the checks and figures of the GPU issue, and one summary table.

Run through ``bash bench/gpu.sh`` (which first installs what the node lacks from
``bench/wheelhouse``). Steps, each on its own (a failure is reported, the next step runs):

1. environment: torch, the GPU, the precision galcnn picks;
2. the tests marked ``gpu`` and the not-slow suite, on this machine;
3. the device recipe against the CPU recipe (values and images/s);
4. ``galcnn train`` on GZ1 with AMP: images/s against forward+backward+step of the same model
   on batches already on the device; then ``--resume`` one more epoch; one epoch ``--no-amp``;
5. ``galcnn predict`` on the GZ1 cutouts against min(read over all cores, model on the
   device); beliefs of the GPU (bf16, device recipe) against the CPU (float32);
6. ``galcnn segment`` of a large simulated field: Mpix/s against the forward passes alone;
   tiles 128 against 512, and against the CPU;
7. two-process DDP (NCCL on two GPUs, else gloo on one);
8. a GPU out-of-memory error as a user sees it;
9. ``train --preset gpu`` on GZ1 (an ensemble of wide members; issue 24), epochs bounded by
   the lease: time per member, validation and test figures of the ensemble.

GZ1 comes from ``bench/data/gz1.tar.xz`` (``bash bench/gpu-kit.sh`` makes it from the shared
set), else ``../shared/data/gz1``, else simulated cutouts. Without a GPU every step runs at
small sizes on the CPU, so the script is known to work before a GPU is at hand. Logs and
``summary.json`` go to ``$OUT`` (default ``bench/gpu-out``).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import traceback

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

GPU = torch.cuda.is_available()
OUT = os.path.abspath(os.environ.get("OUT") or os.path.join(HERE, "gpu-out"))
WORK = os.path.join(OUT, "work")
CPUS = len(os.sched_getaffinity(0))
SIZE = {"gz1": None if GPU else 400, "epochs": 3 if GPU else 1, "field": 4096 if GPU else 1024,
        "tiles_field": 1024 if GPU else 512, "unet_epochs": 30 if GPU else 2,
        "predict_cpu": 1000 if GPU else 200, "preset_epochs": 12 if GPU else 1}
GALCNN = [sys.executable, "-m", "galcnn"]
ROWS: list[dict] = []


def record(step: str, what: str, value, target: str = "", note: str = "") -> None:
    ROWS.append({"step": step, "what": what, "value": value, "target": target, "note": note})
    print(f"    {what}: {value}" + (f"  (target {target})" if target else "")
          + (f"  [{note}]" if note else ""), flush=True)


def shell(name: str, command: list[str], timeout: float, env: dict | None = None
          ) -> subprocess.CompletedProcess:
    """Run a command with its output in ``OUT/name.log``; the tail is printed on failure."""
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=ROOT)
    with open(os.path.join(OUT, f"{name}.log"), "w") as log:
        log.write(f"$ {' '.join(command)}\n[exit {done.returncode}, "
                  f"{time.monotonic() - started:.1f} s]\n{done.stdout}\n{done.stderr}")
    if done.returncode != 0:
        print(f"    {name}: exit {done.returncode}\n" + "\n".join(
            (done.stdout + done.stderr).strip().splitlines()[-8:]), flush=True)
    return done


def step(number: int, title: str):
    def decorate(function):
        def run(*args):
            print(f"\n=== {number} {title} ({time.strftime('%H:%M:%S')})", flush=True)
            started = time.monotonic()
            try:
                return function(*args)
            except Exception as exc:  # noqa: BLE001  a failed step is reported, the rest run
                with open(os.path.join(OUT, f"step{number}-error.log"), "w") as log:
                    log.write(traceback.format_exc())
                record(f"{number}", "FAILED", f"{type(exc).__name__}: {str(exc)[:150]}")
                return None
            finally:
                print(f"    [{time.monotonic() - started:.0f} s]", flush=True)
        return run
    return decorate


def synchronize() -> None:
    if GPU:
        torch.cuda.synchronize()


@step(1, "environment")
def environment() -> None:
    from galcnn.runtime import amp_dtype, precision_of, select_device

    device = select_device("auto")
    record("1", "torch", f"{torch.__version__} (CUDA {torch.version.cuda})")
    if GPU:
        properties = torch.cuda.get_device_properties(0)
        record("1", "device", f"{properties.name}, sm{properties.major}{properties.minor}, "
                              f"{properties.total_memory / 2**30:.0f} GiB, "
                              f"{torch.cuda.device_count()} GPU(s)")
    record("1", "galcnn picks", f"{device}, {precision_of(device, amp_dtype(device))}")
    record("1", "CPUs", CPUS)


@step(2, "tests: marked gpu, then the not-slow suite")
def tests() -> None:
    for name, marker, limit in (("tests-gpu", "gpu", 300), ("tests-not-slow", "not slow", 400)):
        done = shell(name, [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "-m", marker], timeout=limit)
        summary = (done.stdout.strip().splitlines() or ["?"])[-1]
        record("2", f"pytest -m '{marker}'", summary, "all pass")


@step(3, "device recipe against the CPU recipe")
def device_recipe() -> None:
    from galcnn.data.recipe import Preprocess
    from galcnn.data.stretch import Stretch
    from galcnn.device_recipe import DeviceRecipe

    device = torch.device("cuda" if GPU else "cpu")
    rng = np.random.default_rng(0)
    for label, shape, size, fit, stretch in (("GZ1 64 px peak", (64, 64), (64, 64), "crop",
                                              "peak"),
                                             ("MiraBest 150->75 peak", (150, 150), (75, 75),
                                              "resize", "peak"),
                                             ("field 256 px asinh", (256, 256), (256, 256),
                                              "crop", "asinh")):
        n = 256 if GPU else 32
        images = (rng.normal(0, 1, (n, 3, *shape)) * 5 + 100).astype(np.float32)
        images[:, :, shape[0] // 2 - 3:shape[0] // 2 + 3, shape[1] // 2 - 3:] += 400
        images[0, 1, 5:9, 3:12] = np.nan
        recipe = Preprocess(bands=("g", "r", "i"), size=size, fit=fit, stretch=Stretch(stretch))
        started = time.perf_counter()
        cpu = np.stack(recipe.apply_all(list(images[:32])))
        cpu_rate = 32 / (time.perf_counter() - started)
        on_device = DeviceRecipe(recipe, device)
        batch = torch.from_numpy(images)
        on_device(batch[:8])
        synchronize()
        started = time.perf_counter()
        got = on_device(batch)
        synchronize()
        rate = n / (time.perf_counter() - started)
        worst = float(np.abs(got[:32].cpu().numpy() - cpu).max())
        record("3", label, f"max |device - cpu| {worst:.1e}; {rate:.0f} images/s on the device, "
                           f"{cpu_rate:.0f}/s CPU recipe in one process", "< 1e-4")


def gz1_source() -> str:
    """A folder of GZ1 cutouts with labels.csv (a subset of SIZE['gz1'] on a CPU)."""
    packed = os.path.join(HERE, "data", "gz1.tar.xz")
    shared = os.path.join(ROOT, "..", "shared", "data", "gz1")
    if os.path.exists(packed):
        target = os.path.join(WORK, "gz1-files")
        if not os.path.isdir(os.path.join(target, "gz1")):
            with tarfile.open(packed) as archive:
                archive.extractall(target, filter="data")
        source = os.path.join(target, "gz1")
    elif os.path.isdir(shared):
        source = shared
    else:
        from galcnn.data.simulate import CLASSES, simulate_cutout, write_cutout

        source = os.path.join(WORK, "simulated-gz1")
        rng = np.random.default_rng(0)
        for kind in CLASSES:
            os.makedirs(os.path.join(source, kind), exist_ok=True)
            for i in range(500 if GPU else 60):
                write_cutout(os.path.join(source, kind, f"{kind}_{i:04d}.fits"),
                             simulate_cutout(kind, size=64, snr=float(rng.uniform(5, 60)),
                                             rng=rng), compress=False)
        return source
    if SIZE["gz1"] is None:
        return source
    subset = os.path.join(WORK, "gz1-subset")
    os.makedirs(os.path.join(subset, "cutouts"), exist_ok=True)
    with open(os.path.join(source, "labels.csv")) as handle:
        rows = list(csv.DictReader(handle))[:SIZE["gz1"]]
    with open(os.path.join(subset, "labels.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        link = os.path.join(subset, row["file"])
        if not os.path.exists(link):
            os.symlink(os.path.abspath(os.path.join(source, row["file"])), link)
    return subset


def cutout_files(folder: str) -> list[str]:
    from galcnn.data.inputs import expand_inputs

    return [path for path, _ in expand_inputs([folder])]


class Utilisation:
    """nvidia-smi's GPU utilisation, sampled every 200 ms while the block runs."""

    def __enter__(self):
        self.process = None
        if GPU and shutil.which("nvidia-smi"):
            self.process = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                 "-lms", "200"], stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc):
        self.samples = []
        if self.process:
            self.process.terminate()
            out, _ = self.process.communicate()
            self.samples = [int(v) for v in re.findall(r"\d+", out)]

    def text(self) -> str:
        if not self.samples:
            return "not sampled"
        busy = [s for s in self.samples if s > 0]
        return (f"median {np.median(busy) if busy else 0:.0f} % while busy, "
                f"{len(busy)}/{len(self.samples)} samples busy")


@step(4, "galcnn train on GZ1 (AMP), --resume, --no-amp")
def train_gz1(source: str) -> str | None:
    from train import compute_rate

    from galcnn.checkpoint import load_checkpoint
    from galcnn.data.dataset import PreparedDataset
    from galcnn.runtime import select_device
    from galcnn.stages.train import TrainOptions

    prepared = os.path.join(WORK, "gz1")
    if not os.path.isdir(prepared):
        shell("prepare-gz1", GALCNN + ["-q", "prepare", source, "-o", prepared, "-j",
                                       str(CPUS)], timeout=300).check_returncode()
    run = os.path.join(WORK, "gz1run")
    epochs = SIZE["epochs"]
    with Utilisation() as busy:
        done = shell("train-gz1", GALCNN + ["train", "--data", prepared, "--out", run,
                                            "--epochs", str(epochs), "--patience", "99",
                                            "--overwrite"], timeout=600)
    done.check_returncode()
    history = list(csv.DictReader(open(os.path.join(run, "metrics.csv"))))
    end_to_end = float(history[-1]["images_per_s"])
    config = json.load(open(os.path.join(run, "config.json")))
    card = load_checkpoint(run)["card"]
    train_set = PreparedDataset(prepared, "train")
    options = TrainOptions(batch_size=64)
    compute = compute_rate(card, train_set, options, select_device("auto"),
                           min(len(train_set), 4096 if GPU else 512))
    record("4", "train images/s (last epoch) / forward+backward+step",
           f"{end_to_end:.0f} / {compute:.0f} = {end_to_end / compute:.2f}", ">= 0.9",
           f"{config['device']} {config['precision']}, {config['loader_workers']} loader "
           f"workers, batch 64, {len(train_set)} training cutouts")
    record("4", "GPU utilisation while training", busy.text())
    record("4", "validation accuracy after the epochs", history[-1]["val_accuracy"])
    resumed = shell("train-gz1-resume", GALCNN + ["-q", "train", "--data", prepared, "--out",
                                                   run, "--epochs", str(epochs + 1),
                                                   "--patience", "99", "--resume"],
                    timeout=300)
    rows = list(csv.DictReader(open(os.path.join(run, "metrics.csv"))))
    record("4", "--resume one more epoch", f"exit {resumed.returncode}, {len(rows)} epochs in "
                                            "metrics.csv", f"exit 0, {epochs + 1} epochs")
    fp32 = os.path.join(WORK, "gz1fp32")
    shell("train-gz1-fp32", GALCNN + ["-q", "train", "--data", prepared, "--out", fp32,
                                      "--epochs", "1", "--no-amp", "--overwrite"],
          timeout=300).check_returncode()
    rows = list(csv.DictReader(open(os.path.join(fp32, "metrics.csv"))))
    precision = json.load(open(os.path.join(fp32, "config.json")))["precision"]
    record("4", "--no-amp images/s (1 epoch, with warm-up)",
           f"{float(rows[-1]['images_per_s']):.0f}", note=precision)
    return run


@step(5, "galcnn predict on the GZ1 cutouts")
def predict_gz1(source: str, run: str) -> None:
    from predict import model_rate
    from limits import limit, read_rate

    from galcnn.runtime import inference_batch_size, select_device
    from galcnn.stages.predict import PredictOptions, predict

    device = select_device("auto")
    files = cutout_files(source)
    batch = inference_batch_size(None, device)
    read = read_rate(files, CPUS)
    started = time.perf_counter()
    result = predict(run, files, os.path.join(WORK, "p.csv"), PredictOptions(), overwrite=True)
    end_to_end = result.n_ok / (time.perf_counter() - started)
    model = model_rate(run, files, batch, device, WORK)
    best = limit(read, model, device.type)
    record("5", "predict cutouts/s / limit", f"{end_to_end:.0f} / {best:.0f} = "
                                             f"{end_to_end / best:.2f}", ">= 0.8",
           f"read {read:.0f}/s on {CPUS} cores, model {model:.0f}/s, batch {batch}, "
           f"{len(files)} files")
    if GPU:
        for size in (128, 512, 1024, 2048):
            record("5", f"model cutouts/s at batch {size}",
                   f"{model_rate(run, files[:8192], size, device, WORK):.0f}")
    listing = os.path.join(WORK, "some.txt")
    with open(listing, "w") as handle:
        handle.writelines(f"{f}\n" for f in files[:SIZE["predict_cpu"]])
    tables = {}
    for name, extra in (("default", []), ("fp32", ["--no-amp"]), ("cpu", ["--device", "cpu"])):
        out = os.path.join(WORK, f"p-{name}.csv")
        shell(f"predict-{name}", GALCNN + ["-q", "predict", run, f"@{listing}", "-o", out,
                                           "--overwrite", *extra], timeout=300)
        tables[name] = {r["file"]: r for r in csv.DictReader(open(out)) if r["status"] == "ok"}
    classes = [k for k in next(iter(tables["cpu"].values())) if k.startswith("p_")]
    for name in ("default", "fp32"):
        common = sorted(set(tables[name]) & set(tables["cpu"]))
        gaps = [max(abs(float(tables[name][f][k]) - float(tables["cpu"][f][k]))
                    for k in classes) for f in common]
        flips = sum(tables[name][f]["predicted"] != tables["cpu"][f]["predicted"]
                    for f in common)
        record("5", f"beliefs {name} vs CPU float32", f"max |dp| {max(gaps):.4f}, mean "
                                                      f"{np.mean(gaps):.5f}, {flips} class "
                                                      f"flips in {len(common)}")


@step(6, "galcnn segment: a large field, tiles, GPU against CPU")
def segment_field() -> None:
    from astropy.io import fits
    from segment import big_image, end_to_end, forward_only

    prepared = os.path.join(WORK, "simmask")
    if not os.path.isdir(prepared):
        shell("prepare-masks", GALCNN + ["-q", "prepare", os.path.join(ROOT, "sample_data",
                                                                       "simulated"),
                                         "-o", prepared, "--masks", "hdu:MASK"],
              timeout=300).check_returncode()
    run = os.path.join(WORK, "unet")
    shell("train-unet", GALCNN + ["-q", "train", "--data", prepared, "--out", run, "--task",
                                  "segment", "--epochs", str(SIZE["unet_epochs"]),
                                  "--batch-size", "16", "--overwrite"],
          timeout=400).check_returncode()
    side = SIZE["field"]
    image = os.path.join(WORK, "big.fits")
    big_image(image, side)
    device = "cuda" if GPU else "cpu"
    for tile in (512,):
        whole = end_to_end(run, image, os.path.join(WORK, "segbig"), tile, device,
                           8 if GPU else 1)
        forward = forward_only(run, (side, side), tile, device, 8 if GPU else 1)
        mpix = whole["megapixels"]
        record("6", f"segment {side}x{side} Mpix/s / forward only (tile {tile})",
               f"{mpix / whole['seconds']:.1f} / {mpix / forward:.1f} = "
               f"{forward / whole['seconds']:.2f}", ">= 0.9",
               f"{whole['objects']} objects, peak RSS {whole['peak_rss_mib']:.0f} MiB")
    middle = os.path.join(WORK, "mid.fits")
    big_image(middle, SIZE["tiles_field"])
    maps = {}
    for name, tile, on in (("t128", 128, device), ("t512", 512, device), ("cpu", 512, "cpu")):
        out = os.path.join(WORK, f"seg-{name}")
        shell(f"segment-{name}", GALCNN + ["-q", "segment", run, middle, "-o", out, "--tile",
                                           str(tile), "--device", on, "--overwrite",
                                           "--no-deblend"], timeout=300).check_returncode()
        with fits.open(os.path.join(out, "mid.seg.fits")) as hdul:
            maps[name] = (hdul["PROB"].data.astype(np.float64), hdul["MASK"].data.copy())
    for a, b in (("t128", "t512"), ("t512", "cpu")):
        record("6", f"{a} vs {b}", f"max |dP| {np.abs(maps[a][0] - maps[b][0]).max():.1e}, "
                                   f"{int((maps[a][1] != maps[b][1]).sum())} mask pixels differ",
               "tiles: < 1e-2 in bf16")


DDP_WRAPPER = """
import os, sys, torch
import galcnn.distributed as distributed, galcnn.runtime as runtime
import galcnn.stages.train.loop as loop, galcnn.stages.train.tasks as tasks
if torch.cuda.is_available() and torch.cuda.device_count() < int(os.environ["WORLD_SIZE"]):
    # one GPU: both processes on it, over gloo (NCCL refuses two ranks on one GPU)
    select = runtime.select_device
    loop.select_device = lambda name="auto", local_rank=0: select(name, 0)
    def init(info, device, timeout_minutes=30.0):
        import datetime
        if info.enabled and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("gloo", rank=info.rank,
                                                 world_size=info.world_size)
            distributed._control = torch.distributed.new_group(backend="gloo")
    loop.init_distributed = init
calls = []
validate = tasks.ClassifyTask.validate
tasks.ClassifyTask.validate = lambda self, *a: calls.append(1) or validate(self, *a)
from galcnn.cli import cli
try:
    cli(sys.argv[1:])
finally:
    print(f"rank {os.environ['RANK']} validated {len(calls)} times", flush=True)
"""


@step(7, "two-process DDP")
def ddp(run: str) -> None:
    prepared = os.path.join(WORK, "gz1")
    wrapper = os.path.join(WORK, "ddp.py")
    with open(wrapper, "w") as handle:
        handle.write(DDP_WRAPPER)
    out = os.path.join(WORK, "ddp")
    started = time.monotonic()
    done = shell("ddp", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                         "--nproc_per_node", "2", wrapper, "train", "--data", prepared,
                         "--out", out, "--epochs", "2", "--patience", "99", "--overwrite"],
                 timeout=400, env={"OMP_NUM_THREADS": str(max(1, CPUS // 2))})
    seconds = time.monotonic() - started
    history = list(csv.DictReader(open(os.path.join(out, "metrics.csv")))) \
        if os.path.exists(os.path.join(out, "metrics.csv")) else []
    config = json.load(open(os.path.join(out, "config.json"))) \
        if os.path.exists(os.path.join(out, "config.json")) else {}
    validated = re.findall(r"rank (\d) validated (\d+) times", done.stdout)
    backend = "nccl" if GPU and torch.cuda.device_count() >= 2 else "gloo"
    record("7", "DDP 2 processes", f"exit {done.returncode} in {seconds:.0f} s, "
                                   f"{len(history)} epochs, last {history[-1]['images_per_s'] if history else '?'}"
                                   f" images/s, validations per rank {dict(validated)}",
           "exit 0, rank 1 validates 0 times", f"{backend}, {config.get('device')}")


OOM = """
import sys, torch
if torch.cuda.is_available():
    torch.cuda.set_per_process_memory_fraction(0.002)
else:  # a stand-in for the forward pass
    import galcnn.models as models
    def full(*a, **k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB. GPU 0 "
                                          "has a total capacity of 139.81 GiB of which 1.20 GiB is free.")
    models.GroupPooled.per_element = full
from galcnn.cli import cli
cli(sys.argv[1:])
"""


@step(8, "a GPU out-of-memory error as a user sees it")
def out_of_memory(run: str, source: str) -> None:
    script = os.path.join(WORK, "oom.py")
    with open(script, "w") as handle:
        handle.write(OOM)
    done = shell("oom", [sys.executable, script, "predict", run, source, "-o",
                         os.path.join(WORK, "oom.csv"), "--batch-size", "4096", "--spread",
                         "--overwrite"], timeout=300)
    lines = (done.stdout + done.stderr).strip().splitlines()
    record("8", "predict --batch-size 4096 --spread with 0.2 % of the GPU",
           f"exit {done.returncode}, {len(lines)} line(s): {lines[-1][:150] if lines else ''}",
           "exit 1, one line", "" if GPU else "stand-in (no GPU)")


@step(9, "train --preset gpu on GZ1 (issue 24)")
def preset_gpu() -> None:
    prepared = os.path.join(WORK, "gz1")
    run = os.path.join(WORK, "gz1preset")
    extra = [] if GPU else ["--ensemble", "2", "--width", "8"]
    started = time.monotonic()
    done = shell("train-gz1-preset", GALCNN + [
        "-q", "train", "--data", prepared, "--out", run, "--preset", "gpu", "--epochs",
        str(SIZE["preset_epochs"]), "--overwrite", *extra], timeout=420)
    seconds = time.monotonic() - started
    done.check_returncode()
    metrics = json.load(open(os.path.join(run, "metrics.json")))
    config = json.load(open(os.path.join(run, "config.json")))["options"]
    members = metrics["ensemble"]
    each = ", ".join(f"{m['accuracy']:.3f}" for m in members)
    record("9", f"--preset gpu --epochs {SIZE['preset_epochs']}: ensemble of {len(members)}, "
                f"width {config['width']}, batch {config['batch_size']}",
           f"{seconds:.0f} s; val accuracy {metrics['accuracy']:.3f} macro-F1 "
           f"{metrics['macro_f1']:.3f} (members {each})",
           note="test split: " + (f"{metrics['test']['accuracy']:.3f}" if "test" in metrics
                                  else "none"))


def summary() -> None:
    width = max(len(r["what"]) for r in ROWS)
    print("\n" + "=" * 100)
    print(f"galcnn GPU checks: {'GPU' if GPU else 'CPU (no GPU: small sizes)'}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    for row in ROWS:
        target = f"  [target {row['target']}]" if row["target"] else ""
        print(f"{row['step']:>2} {row['what']:<{width}}  {row['value']}{target}")
    with open(os.path.join(OUT, "summary.json"), "w") as handle:
        json.dump({"gpu": GPU, "sizes": SIZE, "rows": ROWS}, handle, indent=1)


def main() -> None:
    os.makedirs(WORK, exist_ok=True)
    environment()
    tests()
    device_recipe()
    source = gz1_source()
    run = train_gz1(source)
    if run:
        predict_gz1(source, run)
    segment_field()
    ddp(run)
    if run:
        out_of_memory(run, source)
    preset_gpu()
    summary()
    sys.exit(1 if any(row["what"] == "FAILED" for row in ROWS) else 0)


if __name__ == "__main__":
    main()
