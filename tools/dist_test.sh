#!/usr/bin/env bash
# Distributed testing with torchrun (torch.distributed.run), one process per GPU.
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# Without CUDA the processes run on the CPU and talk through gloo; the metrics equal a
# single-process test's.
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT as for dist_train.sh; PYTHON: the
# interpreter (default: python on the PATH).
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
. "$(dirname "$0")/dist_common.sh"
dist_run "$GPUS" test.py "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
