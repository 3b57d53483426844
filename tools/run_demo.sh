#!/usr/bin/env bash
# Train and test every demo config (configs/demo/*.py) on the generated demo data
# (data/demo, from tools/misc/make_demo_data.py) and print their metrics.
#   bash tools/run_demo.sh [PYTHON] [WORK_DIR]      (make demo runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python}
WORK=${2:-work_dirs/demo}
[ -d data/demo ] || { echo "no demo data: run $PY tools/misc/make_demo_data.py data/demo" >&2; exit 1; }
mkdir -p "$WORK"
start=$SECONDS
for cfg in configs/demo/*.py; do
  name=$(basename "$cfg" .py)
  dir="$WORK/$name"
  rm -rf "$dir"
  t0=$SECONDS
  echo "[demo] training $name (log: $dir/train.log)"
  if ! "$PY" tools/train.py "$cfg" --work-dir "$dir" > "$WORK/$name.train.log" 2>&1; then
    tail -n 30 "$WORK/$name.train.log"; echo "[demo] training $name failed" >&2; exit 1
  fi
  mv "$WORK/$name.train.log" "$dir/train.log"
  ckpt=$(cat "$dir/last_checkpoint")
  echo "[demo] testing $name with $ckpt"
  if ! "$PY" tools/test.py "$cfg" "$ckpt" --work-dir "$dir" > "$dir/test.log" 2>&1; then
    tail -n 30 "$dir/test.log"; echo "[demo] testing $name failed" >&2; exit 1
  fi
  echo "[demo] $name done in $((SECONDS - t0)) s"
done
echo "[demo] all done in $((SECONDS - start)) s; metrics on the held-out demo images:"
"$PY" - "$WORK" <<'PY'
import glob, json, os, sys
keys = {'accuracy/top1': 'top-1 % (chance: 25)', 'coco/bbox_mAP': 'bbox mAP',
        'coco/bbox_mAP_50': 'bbox mAP@0.5', 'mIoU': 'mIoU %', 'aAcc': 'aAcc %'}
for path in sorted(glob.glob(os.path.join(sys.argv[1], '*', 'test_metrics.json'))):
    metrics = json.load(open(path))
    shown = ', '.join(f'{keys[k]}: {metrics[k]:.3f}' for k in keys if k in metrics)
    print(f'  {os.path.basename(os.path.dirname(path))}: {shown}')
PY
