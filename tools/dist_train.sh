#!/usr/bin/env bash
# Distributed training with torchrun (torch.distributed.run), one process per GPU.
#   bash tools/dist_train.sh CONFIG GPUS [train.py args...]
# Without CUDA the processes run on the CPU and talk through gloo (a rehearsal of a GPU
# job: same sampler split, gradient averaging and checkpoints):
#   bash tools/dist_train.sh CONFIG 2 --cfg-options train_dataloader.num_workers=0
# Multi-node: NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 PORT=29500 bash tools/dist_train.sh ...
# PYTHON: the interpreter (default: python on the PATH).
CONFIG=$1
GPUS=$2
. "$(dirname "$0")/dist_common.sh"
dist_run "$GPUS" train.py "$CONFIG" --launcher pytorch "${@:3}"
