"""Derived bounds for comparing two float32 computations of the same function.

The rule (every numerical test of the suite and the export tools' ``--verify`` use it):
two float32 computations of one function that differ only in how they round (summation
order, SIMD width, fused kernels, folded BNs, another runtime: everything a CPU's ISA or
a backend changes) differ by at most

    bound = TAIL * EPS32 * sqrt(n) * scale

- EPS32 = 2**-23, float32's machine epsilon = twice the unit roundoff u: each side rounds
  within u per operation.
- n, the accumulation length: the number of rounded terms that feed one output element
  along the computation, counted by ``accumulation_length`` from the ops actually run
  (a convolution adds its fan-in Cin/groups*kh*kw, a matmul its inner size, attention its
  head size plus its key count, a mean/softmax/norm its reduced size, any other op 1).
  It sums every op of the graph, parallel branches included, so it over-counts.
- sqrt(n): rounding errors are independent and of mean zero, so they grow like sqrt(n),
  not n (Higham & Mary, "A new approach to probabilistic rounding error analysis", SIAM
  J. Sci. Comput. 2019). Use ``linear=True`` where terms do not have random signs.
- scale = max |reference|: the error of a sum is relative to the magnitude of its terms;
  the normalization layers keep every layer's magnitudes of the order of its outputs'.
- TAIL = 10: the probabilistic bound holds with probability >= 1 - 2 n exp(-TAIL**2/2)
  per element (< 1e-15 for n < 1e6): a real difference, not luck, is what fails.
The bound does not depend on the machine, and it is far below what a real defect gives
(a wrong fold, pad or layout changes outputs by a fraction of ``scale``).
Decisions taken on compared tensors (argmax, top-k, score thresholds, NMS) are compared
only where they are not near-ties within that bound (the tests' helpers
``decisions_equal_outside_ties`` and ``detections_equal_outside_ties``; docs/testing.md).
"""
import math

import torch

__all__ = ['EPS32', 'TAIL', 'accumulation_length', 'float32_bound']

EPS32 = 2.0**-23
TAIL = 10.0


def accumulation_length(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` once and return n, the number of rounded terms along
    it (the rule of the module docstring): the sum over every aten op run of its
    reduction length (convolution: Cin/groups*kh*kw, mm/bmm/linear: inner size, scaled
    dot-product attention: head size + key count, mean/sum/pool/softmax/norm: reduced
    size), 1 for an elementwise op. Backward ops count too when ``fn`` runs one (a
    convolution's: Cout/groups*kh*kw for the input gradient plus N*H*W for the weight
    gradient)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    aten = torch.ops.aten
    conv = {aten.convolution, aten._convolution, aten.mkldnn_convolution}
    mm = {aten.mm: 0, aten.bmm: 0, aten.matmul: 0, aten.linear: 0, aten.addmm: 1,
          aten.baddbmm: 1}
    reductions = {aten.mean, aten.sum, aten._adaptive_avg_pool2d, aten.avg_pool2d,
                  aten.native_layer_norm, aten.native_group_norm, aten.var_mean, aten.var,
                  aten.native_batch_norm, aten._native_batch_norm_legit,
                  aten._native_batch_norm_legit_no_training, aten.upsample_bilinear2d}

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            op, n = func.overloadpacket, 1
            if op in conv:
                n = math.prod(args[1].shape[1:])
            elif op is aten.convolution_backward:  # grad input: Cout/g*k*k; weight: N*H*W
                grad, w, groups = args[0], args[2], args[9]
                n = grad.shape[1] // groups * math.prod(w.shape[2:]) + \
                    grad.numel() // grad.shape[1]
            elif op is aten.native_batch_norm_backward:  # sums over N*H*W
                n = 2 * args[0].numel() // args[0].shape[1]
            elif op is aten.native_layer_norm_backward:  # over the normalized size and N
                n = 2 * (math.prod(args[2]) + args[0].numel() // math.prod(args[2]))
            elif op in mm:
                n = args[mm[op]].shape[-1]
            elif 'scaled_dot_product' in op.__name__:
                n = args[0].shape[-1] + args[1].shape[-2]
            elif op in (aten._softmax, aten._log_softmax):
                n = args[0].shape[args[1]]
            elif op in reductions:
                first = out[0] if isinstance(out, (tuple, list)) else out
                n = 2 * max(1, args[0].numel() // max(1, first.numel()))
            Count.n += n
            return out

    with Count():
        fn(*args, **kwargs)
    return Count.n


def float32_bound(reference, n, linear=False, tail=TAIL):
    """``TAIL * EPS32 * sqrt(n) * max|reference|`` (``n`` instead of ``sqrt(n)`` with
    ``linear``): the most two float32 computations of ``reference`` with accumulation
    length ``n`` may differ by (the rule of the module docstring)."""
    scale = float(torch.as_tensor(reference).detach().abs().max()) if torch.as_tensor(
        reference).numel() else 0.0
    return tail * EPS32 * (n if linear else math.sqrt(n)) * max(scale, 1e-30)
