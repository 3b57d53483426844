#!/usr/bin/env bash
# Download, on a machine with a package index, what tools/misc/gpu_check.sh installs on a GPU
# machine that has none: the OpenMMLab stack as wheels for the GPU machine's Python, and
# mmcv 2.1.0's source distribution (its ops are compiled there, against that machine's own
# torch, or a wheel built by tools/misc/build_mmcv.sh for that torch is added with --mmcv).
#   bash tools/misc/gpu_wheels.sh [DIR] [--python-version 3.12] [--mmcv WHEEL]
# DIR defaults to work_dirs/gpu-wheels (git-ignored: name it in a GPU run's carry).
# Prints the folder's size: what travels with a GPU run is 64 MiB at most, the repository
# included.
#
# Only what the GPU machine lacks, --no-deps, pinned to the versions the CPU suite runs:
# the image described in docs/cuda.md already has torch, torchvision, numpy, scipy,
# matplotlib, opencv-python-headless, pillow, pyyaml, rich, six, tqdm, packaging, einops,
# regex, zipp, click, markdown, onnx, onnxruntime, tensorboard, wheel and ninja (its
# setuptools may be 82 or newer, which has no pkg_resources).
# The list is what importing emo, mmpretrain, mmdet (with pycocotools' COCO metric) and
# mmseg loads (importlib.metadata.packages_distributions over sys.modules), less those.
set -euo pipefail
dir=work_dirs/gpu-wheels
pyver=3.12
mmcv_wheel=
while [ $# -gt 0 ]; do
  case $1 in
    --python-version) pyver=$2; shift 2 ;;
    --mmcv) mmcv_wheel=$2; shift 2 ;;
    -h|--help) sed -n '/^set -euo/q;2,$p' "$0"; exit 0 ;;
    -*) echo "gpu_wheels.sh: unknown option $1" >&2; exit 2 ;;
    *) dir=$1; shift ;;
  esac
done
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$dir"

PKGS=(mmengine==0.10.7 mmpretrain==1.2.0 mmdet==3.3.0 mmsegmentation==1.2.2
      addict==2.4.0 yapf==0.43.0 platformdirs==4.14.9 termcolor==3.3.0
      terminaltables==3.1.10 prettytable==3.19.0 wcwidth==0.9.4 ftfy==6.3.1
      mat4py==0.6.0 modelindex==0.0.2 model-index==0.1.11 ordered-set==4.1.0
      importlib-metadata==8.7.0  # 8.7: the last without the lazy-importer dependency
      setuptools==81.0.0  # < 82: mmengine and mmcv's setup.py import pkg_resources
      pycocotools==2.0.11 shapely==2.2.0)  # compiled (with wcwidth): for the target CPython

"$PY" -m pip download -q --no-deps --only-binary=:all: -d "$dir" \
  --python-version "$pyver" --implementation cp --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 "${PKGS[@]}"
# mmcv 2.1.0 exists on the index only as a source distribution
"$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$dir" mmcv==2.1.0
if [ -n "$mmcv_wheel" ]; then cp "$mmcv_wheel" "$dir"/; fi
echo "gpu_wheels.sh: $(ls "$dir" | wc -l) files in $dir, $(du -sk "$dir" | cut -f1) KiB" \
  "(budget: 64 MiB with the repository)"
