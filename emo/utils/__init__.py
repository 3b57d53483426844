from .allocator import keep_freed_memory
from .flops import SDPA_OP, model_complexity, sdpa_flop_jit
from .numerics import EPS32, TAIL, accumulation_length, float32_bound

__all__ = [
    'keep_freed_memory', 'model_complexity', 'sdpa_flop_jit', 'SDPA_OP', 'EPS32', 'TAIL',
    'accumulation_length', 'float32_bound'
]
