"""Keep freed CPU memory for reuse: a large speed-up of PyTorch on the CPU under glibc.

glibc's malloc serves every block above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and returns it with ``munmap`` when freed. EMO's early feature maps are larger
than that at any useful batch size (stage 1 expands 24 -> 96 channels at 112x112: 154 MB
at batch 32), so every such tensor is page-faulted and zeroed by the kernel again on every
forward pass, which costs more than the convolution that fills it. Raising the mmap and
trim thresholds makes malloc reuse freed heap memory instead, the same effect as the
jemalloc / tcmalloc preloads of PyTorch's CPU performance guide, without a preload. The
price: a process keeps its peak memory instead of returning it to the system.

``tools/train.py``, ``tools/test.py`` and ``tools/analysis/benchmark.py`` call
:func:`keep_freed_memory` (``EMO_KEEP_FREED_MEMORY=0`` in the environment turns it off);
call it yourself in other programs. It changes nothing numerically.
"""
import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
ENV = 'EMO_KEEP_FREED_MEMORY'


def keep_freed_memory(threshold: int = 2**31 - 1) -> bool:
    """Serve allocations below ``threshold`` bytes from the heap and never trim it
    (glibc ``mallopt``). Returns whether the setting is active: False on other C
    libraries (e.g. macOS, musl) and when ``EMO_KEEP_FREED_MEMORY=0``."""
    if os.environ.get(ENV, '1') == '0' or platform.system() != 'Linux' \
            or platform.libc_ver()[0] != 'glibc':
        return False
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold)
                and libc.mallopt(M_TRIM_THRESHOLD, threshold))
