"""Parameters and FLOPs of a model, with mmengine's counter (fvcore's).

FLOPs are multiply-adds, the attention matmuls included: mmengine has no handle for
``aten::scaled_dot_product_attention``, so a model that uses SDPA would lose them; EMO's
published FLOPs count them. :func:`sdpa_flop_jit` counts exactly what ``q @ k^T`` and
``attn @ v`` would, and :func:`model_complexity` always uses it. (:mod:`emo.patches` also
adds it to mmengine's default handles, so mmdet's / mmseg's own FLOP tools agree.)
"""
from math import prod
from typing import Sequence

import torch
import torch.nn as nn

SDPA_OP = 'aten::scaled_dot_product_attention'


def sdpa_flop_jit(inputs, outputs):
    """Multiply-adds of softmax(q k^T) v: q (..., L, E), k (..., S, E), v (..., S, Ev)."""
    # imported here: importing mmengine.analysis applies emo.patches, which imports this
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(t) for t in inputs[:3])
    *batch, L, E = q
    S, Ev = k[-2], v[-1]
    return prod(batch) * L * S * (E + Ev)


def model_complexity(model: nn.Module, shape: Sequence[int], warn: bool = True) -> dict:
    """Parameters and FLOPs of ``model`` on one zero image (1, 3, H, W), in its current
    mode (``eval()`` it first for the inference FLOPs).

    ``model`` maps an image batch to tensors; an OpenMMLab model (mmpretrain, mmdet,
    mmseg) does so itself, its ``forward`` defaulting to ``mode='tensor'``: classifier
    logits, detector head maps before NMS, segmentor decode head (the auxiliary head is
    counted in the parameters, not in the FLOPs).

    ``warn=False`` silences the counter's per-operator warnings (ops it has no handle
    for, modules never called); ``unsupported`` lists those ops either way.

    Returns:
        dict: ``params`` (int), ``flops`` (int, multiply-adds), ``shape`` ((H, W)),
        ``unsupported`` ({op name: calls} the counter counted as zero).
    """
    from mmengine.analysis import FlopAnalyzer

    h, w = shape
    param = next(model.parameters(), None)
    x = torch.zeros(1, 3, h, w, device=param.device if param is not None else 'cpu')
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, (x, )).set_op_handle(SDPA_OP, sdpa_flop_jit)
        analyzer.unsupported_ops_warnings(warn).uncalled_modules_warnings(warn)
        flops = analyzer.total()
    params = sum(p.numel() for p in model.parameters())
    return dict(params=params, flops=flops, shape=(h, w),
                unsupported=dict(analyzer.unsupported_ops()))
