#!/usr/bin/env bash
# A GPU check of the whole project in one go, sized for a GPU machine without a package
# index (docs/cuda.md): uses that machine's own torch, installs the rest from a wheel folder
# made beforehand by tools/misc/gpu_wheels.sh, gets mmcv's CUDA ops (a wheel built for that
# torch, or compiled there for the GPU present with all cores), then runs, stopping at the
# first failure with its log:
#   ops        mmcv's CUDA kernels (nms, sigmoid focal loss, roi_align) against their CPU forms
#   cls        tools/train.py --amp (EMO-1M, demo ImageNet-style set), tools/test.py
#   ssdlite    tools/train.py + tools/test.py (SSDLite, demo COCO-style set)
#   retinanet  the same for RetinaNet + FPN (the COCO recipe pointed at the demo set)
#   deeplabv3  the same for DeepLabv3 (demo ADE20K-style set); with 2+ GPUs trained by
#              tools/dist_train.sh on 2 processes, SyncBN across them
#   bench-*    tools/analysis/benchmark.py --device cuda: inference fp32 and fp16 (--amp),
#              training img/s with --amp; EMO-1M..6M against EdgeNeXt-XXS, MobileNetV3-L
# and prints the GPU, driver, torch, CUDA, mmcv and every figure.
#
#   bash tools/misc/gpu_check.sh [--wheels DIR] [--mmcv-wheel WHL] [--work DIR] [--jobs N]
#   bash tools/misc/gpu_check.sh --dry-run     # on a CPU: every step, --device cpu, tiny
#
#   --wheels DIR      wheel folder from gpu_wheels.sh (default work_dirs/gpu-wheels); not
#                     needed when PYTHON's environment already has the stack
#   --mmcv-wheel WHL  an mmcv 2.1.0 wheel built with CUDA ops for this machine's torch
#                     (tools/misc/build_mmcv.sh); default: a mmcv-2.1.0-*.whl in --wheels
#                     whose Python tag fits, else compiled here from the sdist in --wheels
#   --work DIR        logs, data, checkpoints, results (default work_dirs/gpu_check)
#   --jobs N          compile jobs for mmcv (default: all cores)
#   --data DIR        the demo data sets (tools/misc/make_demo_data.py; default: made in --work)
#   --dry-run         rehearse on a CPU: no install, --device cpu, tiny schedules and
#                     shapes; each step's time is printed like on a GPU
# PYTHON: the interpreter (default python3 on the PATH, the one holding the machine's torch;
# with --dry-run .venv/bin/python when it exists). GPU_CHECK_TOOL: the command that runs a
# script of tools/ (default $PYTHON; the tests run them in forks of a pre-imported process).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD

DRY=0; WHEELS=work_dirs/gpu-wheels; MMCV_WHEEL=; WORK=work_dirs/gpu_check; DATA=
JOBS=$(getconf _NPROCESSORS_ONLN)  # (nproc would follow OMP_NUM_THREADS)
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY=1; shift ;;
    --wheels) WHEELS=$2; shift 2 ;;
    --mmcv-wheel) MMCV_WHEEL=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --data) DATA=$2; shift 2 ;;
    -h|--help) sed -n '/^set -euo/q;2,$p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "${PYTHON:-}" ]; then
  if [ $DRY = 1 ] && [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd)
read -r -a TOOL <<< "${GPU_CHECK_TOOL:-$PYTHON}"
export PYTHONUNBUFFERED=1
if [ $DRY = 1 ]; then
  DEVICE=cpu
  export CUDA_VISIBLE_DEVICES=  # a rehearsal: the CPU paths even where a GPU is present
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
else
  DEVICE=cuda
fi

SUMMARY=$WORK/summary.txt
: > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
# step NAME CMD...: run CMD with its output in $WORK/NAME.log; time it; stop at a failure
step() {
  local name=$1; shift
  local log=$WORK/$name.log t0 rc=0
  t0=$(date +%s.%N)
  printf '[gpu_check] %-14s ' "$name"
  "$@" > "$log" 2>&1 || rc=$?
  local dt; dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  if [ $rc != 0 ]; then
    echo "FAILED (exit $rc, ${dt} s); the end of $log:"
    tail -n 60 "$log"
    say "step $name: FAILED (exit $rc) after $dt s"
    exit 1
  fi
  echo "ok (${dt} s)"
  say "step $name: ok, $dt s"
}

# --- the machine and its own torch ------------------------------------------------------
env_check() {
  "$PYTHON" - "$DEVICE" <<'EOF'
import platform, sys
import torch
device = sys.argv[1]
print(f'python {platform.python_version()} ({sys.executable})')
print(f'torch {torch.__version__}, built with CUDA {torch.version.cuda}, '
      f'cuDNN {torch.backends.cudnn.version()}')
n = torch.cuda.device_count()
for i in range(n):
    p = torch.cuda.get_device_properties(i)
    print(f'GPU {i}: {p.name}, sm_{p.major}{p.minor}, {p.total_memory / 2**30:.1f} GiB, '
          f'{p.multi_processor_count} SMs')
if device == 'cuda':
    assert torch.version.cuda, f'torch {torch.__version__} is a CPU-only build'
    assert torch.cuda.is_available() and n > 0, \
        f'torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU'
    assert int(torch.__version__.split('.')[0]) >= 2, 'torch >= 2 is needed'
EOF
  # (set -e does not hold inside a function whose status is tested: each || return 1)
  [ $? = 0 ] || return 1
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  fi
  echo "CPU cores: $(getconf _NPROCESSORS_ONLN)"
}

# --- the stack: wheels, then mmcv with CUDA ops -------------------------------------------
install_stack() {
  local site=$WORK/site
  if [ ! -d "$WHEELS" ]; then
    echo "no wheel folder $WHEELS: make it with tools/misc/gpu_wheels.sh on a machine with a" \
      "package index, or install the stack into $PYTHON's environment" >&2
    return 1
  fi
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" $(ls "$WHEELS"/*.whl | grep -v '/mmcv-2.1.0-') || return 1
  local pytag
  pytag=$("$PYTHON" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
  if [ -z "$MMCV_WHEEL" ]; then
    MMCV_WHEEL=$(ls "$WHEELS"/mmcv-2.1.0-"$pytag"-*.whl 2>/dev/null | head -1 || true)
  fi
  if [ -z "$MMCV_WHEEL" ]; then
    echo "compiling mmcv 2.1.0's ops (CUDA for the GPU present) with $JOBS jobs"
    PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} FORCE_CUDA=1 MAX_JOBS=$JOBS INSTALL=0 \
      MMCV_SDIST=$WHEELS/mmcv-2.1.0.tar.gz MMCV_BUILD_DIR=$WORK/mmcv-build \
      KEEP_WHEEL=$WORK/mmcv-wheel bash tools/misc/build_mmcv.sh "$PYTHON" || return 1
    MMCV_WHEEL=$(ls -t "$WORK"/mmcv-wheel/mmcv-2.1.0-*.whl | head -1)
  fi
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "$MMCV_WHEEL"
}


# --- mmcv's compiled kernels against their CPU forms ------------------------------------------
ops_check() {
  "$PYTHON" - "$DEVICE" <<'EOF'
import sys
from importlib.metadata import version
import mmcv.ops, torch
from mmcv.ops import nms, roi_align, sigmoid_focal_loss
device = sys.argv[1]
print(f'mmcv {version("mmcv")} (ops compiled with CUDA '
      f'{mmcv.ops.get_compiling_cuda_version()}, {mmcv.ops.get_compiler_version()}), ' +
      ', '.join(f'{n} {version(n)}' for n in ('mmengine', 'mmpretrain', 'mmdet',
                                               'mmsegmentation')) +
      f', torch {torch.__version__}')
if device == 'cuda':
    assert mmcv.ops.get_compiling_cuda_version() != 'not available', \
        "mmcv's ops were compiled without CUDA"
g = torch.Generator().manual_seed(0)
xy = torch.rand(500, 2, generator=g) * 200
boxes = torch.cat([xy, xy + 8 + torch.rand(500, 2, generator=g) * 60], 1)
scores = torch.rand(500, generator=g)
keep_cpu = nms(boxes, scores, 0.5)[1]
keep = nms(boxes.to(device), scores.to(device), 0.5)[1].cpu()
assert torch.equal(keep, keep_cpu), 'nms on the device keeps other boxes than on the CPU'
print(f'nms ({device}): keeps the same {len(keep)} of 500 boxes as the CPU kernel')
feats = torch.randn(2, 8, 32, 32, generator=g)
rois = torch.tensor([[0, 1.5, 2.0, 20.0, 25.5], [1, 4.0, 4.0, 30.0, 12.0]])
ra_cpu = roi_align(feats, rois, (7, 7), 1.0, 2, 'avg', True)
ra = roi_align(feats.to(device), rois.to(device), (7, 7), 1.0, 2, 'avg', True).cpu()
err = (ra - ra_cpu).abs().max().item()
# bilinear samples of the same float32 inputs: a few ulps of the largest input
bound = 8 * torch.finfo(torch.float32).eps * feats.abs().max().item()
assert err <= bound, f'roi_align: device and CPU differ by {err} > {bound}'
print(f'roi_align ({device}): max |device - CPU| = {err:.2e} (bound {bound:.2e})')
if device == 'cuda':
    from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss
    logits = torch.randn(4000, 80, generator=g)
    labels = torch.randint(0, 81, (4000, ), generator=g)  # 80: background
    onehot = torch.nn.functional.one_hot(labels, 81)[:, :80].float()
    ref = py_sigmoid_focal_loss(logits.double(), onehot.double(), reduction='sum').item()
    got = sigmoid_focal_loss(logits.cuda(), labels.cuda(), 2.0, 0.25, None, 'sum').item()
    rel = abs(got - ref) / abs(ref)
    # a float32 sum of 320000 terms: relative rounding error up to about n * eps / 2
    bound = 320000 * torch.finfo(torch.float32).eps / 2
    assert rel <= bound, f'sigmoid_focal_loss (CUDA) is {rel:.2e} off float64 > {bound:.2e}'
    print(f'sigmoid_focal_loss (CUDA kernel): {rel:.2e} relative to float64 (bound {bound:.1e})')
else:
    print('sigmoid_focal_loss: mmcv has no CPU kernel; mmdet uses py_sigmoid_focal_loss there')
EOF
}

# --- trainings and tests --------------------------------------------------------------------
cls_opts() {
  local d=$DATA/imagenet
  echo "train_dataloader.dataset.data_root=$d val_dataloader.dataset.data_root=$d" \
    "test_dataloader.dataset.data_root=$d"
  if [ $DRY = 1 ]; then
    echo "train_dataloader.dataset.indices=16 train_dataloader.batch_size=8" \
      "val_dataloader.dataset.indices=8 val_dataloader.batch_size=8" \
      "test_dataloader.dataset.indices=8 test_dataloader.batch_size=8 train_cfg.max_epochs=1"
  else  # 3 epochs of the 1600 images, 50 iterations each
    echo "train_cfg.max_epochs=3 train_dataloader.num_workers=4 val_dataloader.num_workers=4"
  fi
  echo "train_cfg.val_interval=1000 default_hooks.checkpoint.interval=1000"
}
det_data_opts() {  # the demo COCO-style set, for the SSDLite demo config (RepeatDataset)
  local c=$DATA/coco/
  echo "train_dataloader.dataset.dataset.data_root=$c val_dataloader.dataset.data_root=$c" \
    "test_dataloader.dataset.data_root=$c" \
    "val_evaluator.ann_file=${c}annotations/instances_val2017.json" \
    "test_evaluator.ann_file=${c}annotations/instances_val2017.json"
}
ssd_opts() {
  det_data_opts
  if [ $DRY = 1 ]; then
    echo "train_dataloader.dataset.dataset.indices=8 train_dataloader.batch_size=4" \
      "val_dataloader.dataset.indices=4 test_dataloader.dataset.indices=4 train_cfg.max_epochs=1"
  else
    echo "train_cfg.max_epochs=6"
  fi
  echo "train_cfg.val_interval=1000 default_hooks.checkpoint.interval=1000"
}
RETINA=configs/detection/retinanet_emo-1m_fpn_8xb4-1x_coco.py
retina_opts() {  # the COCO recipe on the demo set: 3 classes, 128x128, no ImageNet weights
  local c=$DATA/coco/ s
  echo "model.backbone.init_cfg=None model.backbone.frozen_stages=-1"
  echo "model.backbone.norm_eval=False model.bbox_head.num_classes=3"
  for s in train val test; do
    echo "${s}_dataloader.dataset.data_root=$c" \
      "${s}_dataloader.dataset.metainfo.classes=[circle,square,triangle]" \
      "${s}_dataloader.num_workers=0 ${s}_dataloader.persistent_workers=False"
  done
  echo "train_dataloader.dataset.pipeline.2.scale=(128,128)" \
    "val_dataloader.dataset.pipeline.1.scale=(128,128)" \
    "test_dataloader.dataset.pipeline.1.scale=(128,128)" \
    "val_evaluator.ann_file=${c}annotations/instances_val2017.json" \
    "test_evaluator.ann_file=${c}annotations/instances_val2017.json" \
    "param_scheduler.0.end=10 optim_wrapper.optimizer.lr=1e-3"
  if [ $DRY = 1 ]; then
    echo "train_dataloader.dataset.indices=4 train_dataloader.batch_size=2" \
      "val_dataloader.dataset.indices=2 test_dataloader.dataset.indices=2" \
      "train_cfg.max_epochs=1"
  else  # 4 epochs of the 96 images at batch 8
    echo "train_dataloader.batch_size=8 train_cfg.max_epochs=4"
  fi
  echo "train_cfg.val_interval=1000 default_hooks.checkpoint.interval=1000" \
    "default_hooks.logger.interval=5"
}
seg_opts() {
  local a=$DATA/ade/ADEChallengeData2016
  echo "train_dataloader.dataset.data_root=$a val_dataloader.dataset.data_root=$a" \
    "test_dataloader.dataset.data_root=$a"
  if [ $DRY = 1 ]; then
    echo "train_dataloader.batch_size=2 val_dataloader.dataset.indices=2" \
      "test_dataloader.dataset.indices=2 train_cfg.max_iters=2 param_scheduler.0.end=2"
  else
    echo "train_cfg.max_iters=100 param_scheduler.0.end=100"
  fi
  echo "train_cfg.val_interval=100000 default_hooks.checkpoint.interval=100000"
}
# the last checkpoint a training left in its work dir
last_ckpt() { cat "$1"/last_checkpoint; }

train_test() {  # NAME CONFIG OPTS_FUNCTION [train.py args]
  local name=$1 cfg=$2 opts=$3; shift 3
  local work=$WORK/$name
  # shellcheck disable=SC2046
  step "$name-train" "${TOOL[@]}" tools/train.py "$cfg" --work-dir "$work" --no-validate "$@" \
    --cfg-options $($opts)
  # shellcheck disable=SC2046
  step "$name-test" "${TOOL[@]}" tools/test.py "$cfg" "$(last_ckpt "$work")" \
    --work-dir "$work" --cfg-options $($opts)
}

seg_train_test() {
  local cfg=configs/demo/deeplabv3_emo-1m_demo_ade20k.py work=$WORK/deeplabv3 ngpu
  ngpu=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())")
  if [ "$DEVICE" = cuda ] && [ "$ngpu" -ge 2 ]; then
    # 2 processes, one GPU each: every BatchNorm a SyncBatchNorm (the config's sync_bn)
    # shellcheck disable=SC2046
    step deeplabv3-train env PYTHON="$PYTHON" bash tools/dist_train.sh "$cfg" 2 \
      --work-dir "$work" --cfg-options $(seg_opts)
  else
    say "deeplabv3: SyncBN across 2 processes needs 2 GPUs ($DEVICE, $ngpu seen): one process"
    # shellcheck disable=SC2046
    step deeplabv3-train "${TOOL[@]}" tools/train.py "$cfg" --work-dir "$work" \
      --cfg-options $(seg_opts)
  fi
  # shellcheck disable=SC2046
  step deeplabv3-test "${TOOL[@]}" tools/test.py "$cfg" "$(last_ckpt "$work")" \
    --work-dir "$work" --cfg-options $(seg_opts)
}

# --- the benchmark ---------------------------------------------------------------------------
EMO_CFGS="configs/classification/emo-1m_8xb256_in1k.py configs/classification/emo-2m_8xb256_in1k.py
configs/classification/emo-5m_8xb256_in1k.py configs/classification/emo-6m_8xb256_in1k.py"
PEERS="edgenext-xxsmall_3rdparty_in1k mobilenet-v3-large_8xb128_in1k"
bench() {  # NAME [benchmark.py args]
  local name=$1; shift
  local size cfgs=$EMO_CFGS
  if [ $DRY = 1 ]; then  # EMO-1M and the peers, tiny
    size="--shape 64 64 --batch-size 2 --rounds 1 --warmup 1 --iters 1 --no-latency --threads 1"
    cfgs=${EMO_CFGS%% *}
  else
    size="--batch-size 256 --rounds 3 --warmup 5 --iters 20 --latency-iters 50"
  fi
  # shellcheck disable=SC2086
  step "$name" "${TOOL[@]}" tools/analysis/benchmark.py $cfgs --peers $PEERS \
    --device "$DEVICE" $size "$@" --out "$WORK/$name.json"
}

# --- the run --------------------------------------------------------------------------------
mode=GPU; [ $DRY = 1 ] && mode='DRY RUN (CPU)'
say "gpu_check $(date -u +%FT%TZ) on $(hostname), $mode"
step env env_check
sed 's/^/  /' "$WORK/env.log" | tee -a "$SUMMARY"
if [ $DRY = 1 ]; then
  say "install: skipped (dry run: $PYTHON's own environment)"
elif "$PYTHON" -c "import mmcv.ops, mmdet, mmpretrain, mmseg" 2>/dev/null && \
    [ -z "$MMCV_WHEEL" ] && [ ! -d "$WHEELS" ]; then
  say "install: skipped ($PYTHON's environment has the stack)"
else
  step install install_stack
  export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
fi
step ops ops_check
sed 's/^/  /' "$WORK/ops.log" | tee -a "$SUMMARY"
if [ -z "$DATA" ]; then
  DATA=$WORK/data
  step data "${TOOL[@]}" tools/misc/make_demo_data.py "$DATA"
fi

train_test cls configs/demo/emo-1m_demo_cls.py cls_opts --amp
train_test ssdlite configs/demo/ssdlite_emo-1m_demo_coco.py ssd_opts
train_test retinanet "$RETINA" retina_opts
seg_train_test

bench bench-fp32
bench bench-fp16 --amp
bench bench-train-amp --train --amp --channels-last

say ""
say "figures"
for name in cls ssdlite retinanet deeplabv3; do
  say "  $name test: $(tr -d '\n' < "$WORK/$name/test_metrics.json")"
done
for name in bench-fp32 bench-fp16 bench-train-amp; do
  say "  $name:"
  grep '^|' "$WORK/$name.log" | sed 's/^/    /' | tee -a "$SUMMARY"
done
say "gpu_check: all steps passed ($SUMMARY)"
