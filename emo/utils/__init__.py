from .allocator import keep_freed_memory
from .flops import register_flop_handles, sdpa_flop_jit

__all__ = ['keep_freed_memory', 'register_flop_handles', 'sdpa_flop_jit']
