"""emo.utils.keep_freed_memory: freed large tensors stay in the heap for reuse."""
import os
import os.path as osp
import subprocess
import sys

from helpers import REPO

# The probe loads emo/utils/allocator.py by its path: the module imports nothing of emo
# (nor does emo.utils), and a fresh interpreter importing the whole package would spend
# ~5 s of CPU on the OpenMMLab imports per probe.
PROBE = r'''
import ctypes, importlib.util, sys
import torch
spec = importlib.util.spec_from_file_location('allocator', sys.argv[2])
allocator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(allocator)
keep_freed_memory = allocator.keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', 'hblks',
                'hblkhd', 'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')]

libc = ctypes.CDLL('libc.so.6')
libc.mallinfo2.restype = MallInfo2
active = keep_freed_memory() if sys.argv[1] == 'keep' else False
x = torch.empty(64 * 2**20, dtype=torch.uint8).fill_(1)  # 64 MiB, above glibc's 32 MiB cap
mmapped = libc.mallinfo2().hblkhd
del x
print(active, mmapped >= 64 * 2**20, libc.mallinfo2().fordblks >= 64 * 2**20)
'''


def probe(mode, **env):
    path = osp.join(REPO, 'emo', 'utils', 'allocator.py')
    out = subprocess.run([sys.executable, '-c', PROBE, mode, path], capture_output=True,
                         text=True, env=dict(os.environ, **env), check=True).stdout.split()
    return [w == 'True' for w in out]


def test_large_tensors_come_from_the_heap_and_stay():
    # glibc's default: a 64 MiB tensor is its own mmap, returned to the system when freed
    assert probe('default') == [False, True, False]
    # kept: served from the heap, and after `del` the memory waits there for reuse
    assert probe('keep') == [True, False, True]


def test_environment_switch_turns_it_off():
    assert probe('keep', EMO_KEEP_FREED_MEMORY='0') == [False, True, False]
