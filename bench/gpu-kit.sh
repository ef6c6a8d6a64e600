#!/usr/bin/env bash
# What bench/gpu.sh needs on an air-gapped GPU node, made on a connected machine (both folders
# are git-ignored and travel with the repository, about 51 MB in all):
#   bench/wheelhouse/   wheels of what such a node's Python (3.12, with torch, numpy, scipy,
#                       click, rich, scikit-image, matplotlib, pytest) lacks: astropy, pyerfa,
#                       astropy-iers-data, photutils, and pyte for the terminal tests
#   bench/data/gz1.tar.xz  the shared GZ1 cutouts (5314, 35 MB), when ../shared/data is here
# Usage, from the repository root:  bash bench/gpu-kit.sh [PYTHON_VERSION]   (default 3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-3.12}
mkdir -p bench/wheelhouse bench/data
# abi3 wheels (astropy, photutils, pyerfa, wcwidth): the same files serve Python 3.11 and 3.12
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$version" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d bench/wheelhouse \
    "astropy==8.0.2" "pyerfa==2.0.1.5" "astropy-iers-data" "photutils==3.0.0" "pyte==0.8.2" \
    "wcwidth" "packaging>=25" "PyYAML>=6"
if [ -d ../shared/data/gz1 ] && [ ! -f bench/data/gz1.tar.xz ]; then
    tar -cJf bench/data/gz1.tar.xz -C ../shared/data gz1
fi
du -sh bench/wheelhouse bench/data
