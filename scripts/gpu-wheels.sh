#!/usr/bin/env bash
# Wheels that the lent GPU machine's image lacks (it has CUDA torch, numpy, scipy,
# scikit-image, tifffile, safetensors, pytest, psutil), for `make gpu-check` there.
# Run here (with network access to PyPI); carry `.whl` to the GPU machine and install with
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
#   export PYTHONPATH=/tmp/site
# The versions are those the project's venv resolved (pip show in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.whl
mkdir -p "$dest"
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
           --platform manylinux_2_24_x86_64 --platform manylinux_2_5_x86_64
           --platform manylinux1_x86_64)
pkgs=(pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
      zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0
      PyWavelets==1.9.0)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d "$dest" "${pkgs[@]}"
ls -1 "$dest"
