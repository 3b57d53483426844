from .flops import register_flop_handles, sdpa_flop_jit

__all__ = ['register_flop_handles', 'sdpa_flop_jit']
