"""emo.utils.numerics: the accumulation length counted from the aten ops a function runs,
and the derived float32 bound built on it (docs/testing.md states the rule)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from emo.utils.numerics import EPS32, TAIL, accumulation_length, float32_bound


def test_accumulation_length_counts_each_op_by_its_reduction():
    conv = nn.Conv2d(6, 4, 3, groups=2)  # fan-in 6/2 * 3 * 3 = 27
    x = torch.randn(2, 6, 8, 8)
    assert accumulation_length(conv, x) == 27
    assert accumulation_length(lambda t: conv(t) * 2, x) == 27 + 1  # elementwise: 1
    a, b = torch.randn(3, 5, 7), torch.randn(3, 7, 2)
    assert accumulation_length(torch.bmm, a, b) == 7  # the inner size
    assert accumulation_length(lambda t: t.softmax(-1), a) == 7
    # a mean over 5 x 7 of 3 * 5 * 7 elements: two passes over the 35 reduced terms
    assert accumulation_length(lambda t: t.mean((1, 2)), a) == 2 * 35
    q, k, v = torch.randn(3, 1, 2, 9, 4).unbind(0)
    n = accumulation_length(F.scaled_dot_product_attention, q, k, v)
    assert n >= 4 + 9  # head size + key count (however the kernel splits the op)


def test_float32_bound_scales_with_sqrt_n_and_magnitude():
    ref = torch.tensor([-3.0, 0.5, 2.0])
    assert float32_bound(ref, 100) == TAIL * EPS32 * 10 * 3.0
    assert float32_bound(ref, 100, linear=True) == TAIL * EPS32 * 100 * 3.0
    assert math.isclose(float32_bound(2 * ref, 400), 4 * float32_bound(ref, 100))
    assert float32_bound(torch.zeros(0), 10) == TAIL * EPS32 * math.sqrt(10) * 1e-30
