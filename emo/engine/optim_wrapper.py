"""Mixed precision on a CPU: bfloat16 autocast for ``tools/train.py --amp`` without a GPU."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """An ``OptimWrapper`` whose forward passes (the data preprocessor, the model and its
    loss, everything ``train_step`` runs inside ``optim_context``) run under
    ``torch.autocast('cpu', dtype)``: what ``tools/train.py --amp`` uses on a machine
    without a GPU, where mmengine's ``AmpOptimWrapper`` asserts one.

    bfloat16 keeps float32's exponent range, so unlike float16 on CUDA no loss scaling is
    needed: backward, gradient clipping and the optimizer step are ``OptimWrapper``'s, on
    float32 parameters and gradients. Validation and testing run in float32.

    Args:
        dtype (str or torch.dtype): the autocast type, ``'bfloat16'`` (default) or
            ``'float16'`` (CPU autocast supports both; float16 without loss scaling may
            underflow gradients).
        **kwargs: ``OptimWrapper``'s (optimizer, clip_grad, accumulative_counts).
    """

    def __init__(self, dtype='bfloat16', **kwargs):
        super().__init__(**kwargs)
        if isinstance(dtype, str):
            if dtype not in ('bfloat16', 'float16'):
                raise ValueError(f"CPUAutocastOptimWrapper: dtype must be 'bfloat16' or "
                                 f"'float16', got {dtype!r}")
            dtype = getattr(torch, dtype)
        self.cast_dtype = dtype

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield
