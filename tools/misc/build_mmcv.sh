#!/usr/bin/env bash
# Build mmcv 2.1.0 with its compiled ops from the source distribution, against the torch
# already installed in PYTHON's environment (default: .venv/bin/python), and install it there.
#   bash tools/misc/build_mmcv.sh [PYTHON]                                  # CPU ops
#   FORCE_CUDA=1 bash tools/misc/build_mmcv.sh [PYTHON]                     # + CUDA ops, for
#                                                     # the GPU present (all of them if several)
#   FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=9.0 bash tools/misc/build_mmcv.sh     # on a CPU machine:
#                                  # name the architecture(s); each one multiplies compile time
# Environment:
#   MAX_JOBS=N          parallel compile jobs (default 2)
#   KEEP_WHEEL=DIR      keep the built wheel there (e.g. to refill ../shared/wheels/torch-X)
#   INSTALL=0           build the wheel only; do not install it into PYTHON's environment
#   MMCV_SDIST=FILE     mmcv-2.1.0.tar.gz to build (default: downloaded from the index)
#   MMCV_BUILD_DIR=DIR  keep the source tree and its objects there (default: a temporary dir);
#                       a rerun reuses them, so after a failure only the rest is compiled
#   CUDA_HOME=DIR       the CUDA toolkit to use (CUDA mode); otherwise the nvcc on PATH,
#                       /usr/local/cuda-X.Y or /usr/local/cuda is used if its version is
#                       torch.version.cuda's, and else the registry's toolkit wheels
#                       (nvidia-cuda-nvcc, -crt, nvidia-nvvm, nvidia-cuda-cccl, -runtime X.Y.*)
#                       are installed into CUDA_PREFIX (default ~/.cache/emo/cuda-X.Y)
#
# Source changes, all made by the patch step below and nothing else:
#  1. (always) mmcv 2.1.0's setup.py hard-codes -std=c++17 for every torch > 1.12.1, while
#     the headers of torch >= 2.10 refuse anything below C++20: the flag is raised to C++20
#     for g++ and nvcc alike. The CPU ops then compile unchanged with gcc 12 and work with
#     torch 2.5 alike.
#  CUDA 13 / CCCL 3 (CUDA mode only): patch_cuda below holds one change per failure seen,
#     each with its reason; none so far: the sources compiled so far needed none
#     (docs/cuda.md: what was compiled, how long it took).
set -euo pipefail
PY=${1:-.venv/bin/python}
CUDA=${FORCE_CUDA:-0}

if [ -n "${MMCV_BUILD_DIR:-}" ]; then
  src=$MMCV_BUILD_DIR; mkdir -p "$src"
else
  src=$(mktemp -d); trap 'rm -rf "$src"' EXIT
fi
tree=$src/mmcv-2.1.0

patch_common() {
  sed -i 's/-std=c++17/-std=c++20/g' "$tree"/setup.py
}

patch_cuda() {
  :  # none needed so far (docs/cuda.md)
}

if [ ! -f "$tree"/.emo-patched ]; then
  if [ -n "${MMCV_SDIST:-}" ]; then
    sdist_dir=$(cd "$(dirname "$MMCV_SDIST")" && pwd)
    [ "$sdist_dir" = "$(cd "$src" && pwd)" ] || cp "$MMCV_SDIST" "$src"/
  else  # metadata preparation imports torch, hence --no-build-isolation
    "$PY" -m pip download --no-deps --no-binary :all: --no-build-isolation mmcv==2.1.0 -d "$src"
  fi
  rm -rf "$tree"; tar xzf "$src"/mmcv-2.1.0.tar.gz -C "$src"
  patch_common
  if [ "$CUDA" = 1 ]; then patch_cuda; fi
  echo "cuda=$CUDA" > "$tree"/.emo-patched
elif [ "$(cat "$tree"/.emo-patched)" != "cuda=$CUDA" ]; then
  echo "build_mmcv.sh: $tree was patched for $(cat "$tree"/.emo-patched), not cuda=$CUDA;" \
    "remove it or choose another MMCV_BUILD_DIR" >&2
  exit 1
fi

if [ "$CUDA" = 1 ]; then
  # the CUDA version torch was built with, and the site-packages holding its CUDA libraries
  read -r tcuda tsite < <("$PY" -c "import torch, os; \
print(torch.version.cuda or 'none', os.path.dirname(os.path.dirname(torch.__file__)))")
  if [ "$tcuda" = none ]; then
    echo "build_mmcv.sh: FORCE_CUDA=1 but $PY's torch is a CPU-only build" >&2; exit 1
  fi
  nvcc_version() { "$1"/bin/nvcc --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p'; }
  if [ -z "${CUDA_HOME:-}" ]; then
    # the toolkit an nvcc on PATH belongs to (it may be a wrapper script): nvcc says itself
    onpath=$(nvcc -v --dryrun -c x.cu 2>&1 | sed -n 's/^#\$ _HERE_=//p' || true)
    for c in "${onpath%/bin}" /usr/local/cuda-"$tcuda" /usr/local/cuda; do
      if [ -x "$c"/bin/nvcc ] && [ "$(nvcc_version "$c")" = "$tcuda" ]; then
        CUDA_HOME=$c; break
      fi
    done
  fi
  if [ -z "${CUDA_HOME:-}" ]; then
    prefix=${CUDA_PREFIX:-$HOME/.cache/emo/cuda-$tcuda}
    major=${tcuda%%.*}
    if [ ! -x "$prefix"/nvidia/cu"$major"/bin/nvcc ]; then
      echo "build_mmcv.sh: no nvcc $tcuda found; installing the registry's into $prefix" >&2
      "$PY" -m pip install --target "$prefix" --no-deps \
        "nvidia-cuda-nvcc==$tcuda.*" "nvidia-cuda-crt==$tcuda.*" "nvidia-nvvm==$tcuda.*" \
        "nvidia-cuda-cccl==$tcuda.*" "nvidia-cuda-runtime==$tcuda.*"
    fi
    CUDA_HOME=$prefix/nvidia/cu$major
    [ -e "$CUDA_HOME"/lib64 ] || ln -s lib "$CUDA_HOME"/lib64
  fi
  if [ ! -x "$CUDA_HOME"/bin/nvcc ]; then
    echo "build_mmcv.sh: CUDA_HOME=$CUDA_HOME has no bin/nvcc" >&2; exit 1
  fi
  if [ "$(nvcc_version "$CUDA_HOME")" != "$tcuda" ]; then
    echo "build_mmcv.sh: $CUDA_HOME/bin/nvcc is release $(nvcc_version "$CUDA_HOME")," \
      "torch was built with CUDA $tcuda; set CUDA_HOME to a $tcuda toolkit" >&2
    exit 1
  fi
  # The headers torch's CUDA headers include (cublas, cusparse, cusolver, curand) come with
  # torch's own dependencies (nvidia/cuXX/include) when the toolkit lacks them.
  if [ ! -f "$CUDA_HOME"/include/cublas_v2.h ]; then
    for d in "$tsite"/nvidia/cu*/include "$tsite"/nvidia/cublas/include \
        "$tsite"/nvidia/cusparse/include "$tsite"/nvidia/cusolver/include \
        "$tsite"/nvidia/curand/include; do
      [ -d "$d" ] && export CPATH=${CPATH:+$CPATH:}$d
    done
  fi
  if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
    TORCH_CUDA_ARCH_LIST=$("$PY" -c "import torch; n = torch.cuda.device_count(); \
print(' '.join(sorted({'%d.%d' % torch.cuda.get_device_capability(i) for i in range(n)})))")
    if [ -z "$TORCH_CUDA_ARCH_LIST" ]; then
      echo "build_mmcv.sh: no GPU here; name the architecture(s) to compile for, e.g." \
        "TORCH_CUDA_ARCH_LIST=9.0 (H100/H200), 8.0 (A100), 8.6 (RTX 30xx), 8.9 (RTX 40xx)" >&2
      exit 1
    fi
  fi
  export CUDA_HOME FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST PATH=$CUDA_HOME/bin:$PATH
  echo "build_mmcv.sh: CUDA $tcuda from $CUDA_HOME, for $TORCH_CUDA_ARCH_LIST" >&2
fi

(cd "$tree" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} \
  "$PY" -m pip wheel . --no-deps --no-build-isolation -w "$src"/dist)
wheel=$(ls -t "$src"/dist/mmcv-2.1.0-*.whl | head -1)
if [ "${INSTALL:-1}" = 1 ]; then "$PY" -m pip install --no-deps --force-reinstall "$wheel"; fi
if [ -n "${KEEP_WHEEL:-}" ]; then mkdir -p "$KEEP_WHEEL" && cp "$wheel" "$KEEP_WHEEL"/; fi
