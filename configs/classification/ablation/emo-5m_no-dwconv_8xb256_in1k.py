# Ablation of the paper's receptive-field argument: EMO-5M without the DW-Conv's spatial
# mixing in stages 3-4 (their depthwise kernels 5x5 -> 1x1: a per-channel scale with its
# BN and GELU; the stride-2 first block of each of those stages subsamples with it), so
# that the EW-MHSA is the only operator that mixes pixels there. (The iRMB drops its
# DW-Conv with dw_kernel_size=0, which a stride-2 block cannot: 1x1 is the nearest
# network the backbone's arguments build.) Same recipe as EMO-5M.
# tools/analysis/get_flops.py at 224x224: params 4.8861 M (4886128), FLOPs 0.8716 G
# (871589120; EMO-5M: 5.1088 M, 0.9026 G).
_base_ = '../emo-5m_8xb256_in1k.py'
# EMO-5M's arch (EMO.arch_settings['5m']; a dict arch must name all four entries and
# replaces the base's string: _delete_) with dw_kernels [3, 3, 1, 1] (default [3, 3, 5, 5]).
model = dict(backbone=dict(arch=dict(
    _delete_=True,
    depths=[3, 3, 9, 3], widths=[48, 72, 160, 288], exp_ratios=[2.0, 3.0, 4.0, 4.0],
    dim_heads=[None, None, 32, 32], drop_path_rate=0.05, dw_kernels=[3, 3, 1, 1])))
