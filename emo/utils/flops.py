"""FLOP counting for ``F.scaled_dot_product_attention`` in mmengine's counter.

mmengine's ``get_model_complexity_info`` (fvcore's counter) counts multiply-adds of
matmuls but has no handle for ``aten::scaled_dot_product_attention``, so a model that
uses SDPA would lose its attention matmuls. EMO's published FLOPs count them; this
handle counts exactly what ``q @ k^T`` and ``attn @ v`` would. It is added to mmengine's
default handles when ``emo`` is imported, so mmdet's / mmseg's own FLOP tools agree.
"""
from math import prod

from mmengine.analysis import complexity_analysis
from mmengine.analysis.jit_handles import get_shape

SDPA_OP = 'aten::scaled_dot_product_attention'


def sdpa_flop_jit(inputs, outputs):
    """Multiply-adds of softmax(q k^T) v: q (..., L, E), k (..., S, E), v (..., S, Ev)."""
    q, k, v = (get_shape(t) for t in inputs[:3])
    *batch, L, E = q
    S, Ev = k[-2], v[-1]
    return prod(batch) * L * S * (E + Ev)


def register_flop_handles():
    complexity_analysis._DEFAULT_SUPPORTED_FLOP_OPS.setdefault(SDPA_OP, sdpa_flop_jit)


register_flop_handles()
