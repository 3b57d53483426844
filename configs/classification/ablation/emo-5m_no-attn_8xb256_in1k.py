# Ablation of the paper's receptive-field argument: EMO-5M without the EW-MHSA (every iRMB
# of stages 3-4 is v -> DW-Conv (+skip) -> proj: an inverted residual block with a pre-norm),
# trained with the same recipe. tools/visualization/feature_similarity.py and vis_erf.py
# compare its checkpoints with EMO-5M's (docs/visualization.md).
# tools/analysis/get_flops.py at 224x224: params 4.3638 M (4363760), FLOPs 0.7787 G
# (778707072; EMO-5M: 5.1088 M, 0.9026 G; the qk projections and the attention matmuls are gone).
_base_ = '../emo-5m_8xb256_in1k.py'
# EMO-5M's arch (EMO.arch_settings['5m']; a dict arch must name all four entries and
# replaces the base's string: _delete_) with attn_stages off (default [F, F, T, T]).
model = dict(backbone=dict(arch=dict(
    _delete_=True,
    depths=[3, 3, 9, 3], widths=[48, 72, 160, 288], exp_ratios=[2.0, 3.0, 4.0, 4.0],
    dim_heads=[None, None, 32, 32], drop_path_rate=0.05,
    attn_stages=[False, False, False, False])))
