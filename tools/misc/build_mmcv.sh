#!/usr/bin/env bash
# Build and install mmcv 2.1.0 with its compiled ops from the source distribution, against
# the torch already installed in PYTHON's environment (default: .venv/bin/python).
#   bash tools/misc/build_mmcv.sh [PYTHON]            # CPU ops
#   FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 bash tools/misc/build_mmcv.sh   # + CUDA ops
# mmcv 2.1.0's setup.py hard-codes -std=c++17 for every torch > 1.12.1, while the headers
# of torch >= 2.10 refuse anything below C++20; the flag is raised to C++20 (the only
# change; the ops compile unchanged with gcc 12 and work with torch 2.5 alike).
# KEEP_WHEEL=DIR keeps the built wheel there (e.g. to refill ../shared/wheels/torch-X).
set -euo pipefail
PY=${1:-.venv/bin/python}
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
"$PY" -m pip download --no-deps --no-binary :all: --no-build-isolation mmcv==2.1.0 -d "$src"
tar xzf "$src"/mmcv-2.1.0.tar.gz -C "$src"
sed -i 's/-std=c++17/-std=c++20/g' "$src"/mmcv-2.1.0/setup.py
(cd "$src"/mmcv-2.1.0 && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} \
  "$PY" -m pip wheel . --no-deps --no-build-isolation -w "$src"/dist)
"$PY" -m pip install --no-deps "$src"/dist/mmcv-2.1.0-*.whl
if [ -n "${KEEP_WHEEL:-}" ]; then mkdir -p "$KEEP_WHEEL" && cp "$src"/dist/mmcv-2.1.0-*.whl "$KEEP_WHEEL"/; fi
