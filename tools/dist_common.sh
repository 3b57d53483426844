#!/usr/bin/env bash
# What dist_train.sh and dist_test.sh share (sourced, not run): torchrun
# (torch.distributed.run) with one process per GPU.
#   dist_run NPROC SCRIPT [SCRIPT args...]   runs tools/SCRIPT in NPROC processes
# Multi-node: NNODES (default 1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500);
# PYTHON: the interpreter (default: python on the PATH).
TOOLS_DIR="$(dirname "${BASH_SOURCE[0]}")"

dist_run() {
    local nproc=$1 script=$2
    shift 2
    PYTHONPATH="$TOOLS_DIR/..":$PYTHONPATH \
    "${PYTHON:-python}" -m torch.distributed.run --nnodes="${NNODES:-1}" \
        --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" \
        --nproc_per_node="$nproc" --master_port="${PORT:-29500}" \
        "$TOOLS_DIR/$script" "$@"
}
