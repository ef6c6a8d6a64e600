#!/usr/bin/env bash
# galcnn on a GPU in one command (issue 20), under 8 minutes on one H200 with its install:
#   bash bench/gpu.sh          # from the repository root; logs and summary.json in $OUT
# An air-gapped node (no package index) gets what it lacks from bench/wheelhouse (made by
# bench/gpu-kit.sh on a connected machine); galcnn itself is installed without dependencies.
# Without a GPU the same steps run at small sizes on the CPU. See bench/gpu.py for the steps.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-$PWD/bench/gpu-out}
mkdir -p "$OUT"
python=${PYTHON:-python3}
started=$SECONDS
if ! "$python" -c "import astropy, photutils, pyte" 2>/dev/null; then
    echo "=== 0 install astropy, photutils, pyte from bench/wheelhouse (no index)"
    if ! "$python" -m pip install --quiet --no-index --find-links bench/wheelhouse \
            astropy photutils pyte 2>"$OUT/install.log"; then
        # a read-only environment: a folder of its own, put on the path
        "$python" -m pip install --quiet --no-index --find-links bench/wheelhouse \
            --target /tmp/galcnn-site astropy photutils pyte >>"$OUT/install.log" 2>&1 \
            || { echo "install failed:"; tail -5 "$OUT/install.log"; exit 1; }
        export PYTHONPATH=/tmp/galcnn-site${PYTHONPATH:+:$PYTHONPATH}
    fi
fi
if ! (cd / && "$python" -c "import galcnn" 2>/dev/null); then  # not this folder's copy
    "$python" -m pip install --quiet --no-index --no-deps --no-build-isolation -e . \
        >>"$OUT/install.log" 2>&1 || export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
"$python" -c "import galcnn, astropy, photutils; print('galcnn', galcnn.__version__, \
'astropy', astropy.__version__, 'photutils', photutils.__version__)" || exit 1
echo "    [install $((SECONDS - started)) s]"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} PYTHONWARNINGS=${PYTHONWARNINGS:-ignore}
export PYTHONUNBUFFERED=1
"$python" bench/gpu.py 2>&1 | tee "$OUT/gpu.log"
status=${PIPESTATUS[0]}
echo "[bench/gpu.sh: $((SECONDS - started)) s in all, exit $status]"
exit "$status"
