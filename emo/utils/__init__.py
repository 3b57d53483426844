from .allocator import keep_freed_memory
from .flops import model_complexity, register_flop_handles, sdpa_flop_jit

__all__ = ['keep_freed_memory', 'model_complexity', 'register_flop_handles',
           'sdpa_flop_jit']
