"""How long a person waits for galcnn's first word: --help, a usage error, and an error that
needs the model, each in a fresh process (the median of 5), against Python starting alone.

    python bench/coldstart.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SIMULATED = os.path.join(HERE, "..", "sample_data", "simulated")


def seconds(args: list[str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(args, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        fake = os.path.join(tmp, "model.pt")
        with open(fake, "w") as handle:
            handle.write("not a checkpoint")
        galcnn = [sys.executable, "-m", "galcnn"]
        cases = [("python -c pass", [sys.executable, "-c", "pass"])]
        for command in ("prepare", "train", "evaluate", "predict", "explain", "embed", "similar",
                        "segment"):
            cases.append((f"galcnn {command} --help", galcnn + [command, "--help"]))
        cases += [
            ("predict: an input that is not there (usage error)",
             galcnn + ["predict", fake, "nowhere/", "-o", os.path.join(tmp, "p.csv")]),
            ("train: --arch misspelt (usage error)",
             galcnn + ["train", "--data", SIMULATED, "--out", tmp, "--arch", "resnett"]),
            ("predict: a file that is not a checkpoint (needs torch)",
             galcnn + ["predict", fake, SIMULATED, "-o", os.path.join(tmp, "p.csv")]),
        ]
        width = max(len(name) for name, _ in cases)
        for name, args in cases:
            print(f"{name:<{width}}  {seconds(args):.2f} s", flush=True)


if __name__ == "__main__":
    main()
