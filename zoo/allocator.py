"""Keep freed CPU memory in the process for the next batch (glibc ``malloc`` tuning).

glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh ``mmap``
and returns it with ``munmap`` when freed. A CNN at batch 16 allocates dozens of such
activations per forward pass, and the kernel must fault in and zero every page of each one
again: 10-20% of a ResNet-50 forward pass on CPU (see ``benchmarks/RESULTS.md``). TensorFlow
and PyTorch's CUDA side avoid this with caching allocators; for torch on CPU, Intel's tuning
guide recommends jemalloc or tcmalloc through ``LD_PRELOAD``. :func:`tune_cpu_allocator` gets
the same effect from glibc itself, at run time: big blocks come from the heap and freed ones
stay there for reuse. It is the same as starting Python with
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647`` in the environment.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["tune_cpu_allocator"]

# mallopt parameters, from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_KEEP_UP_TO = 2**31 - 1  # bytes of free memory at the top of the heap kept (mallopt takes int)


def tune_cpu_allocator() -> bool:
    """Make this process's C allocator keep and reuse large freed blocks; True if it did.

    Process-wide and not undone: memory freed by one batch stays in the process (up to 2 GB
    above what is in use) for the next, the way a caching allocator does. Meant for
    processes that run inference repeatedly; it pays most at larger batches. Only glibc (Linux)
    has the switches; elsewhere nothing changes and False is returned, and jemalloc or
    tcmalloc (``LD_PRELOAD``) are the alternatives there.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # no libc by that name, or one without mallopt (musl)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # the trim threshold first: with it alone nothing changes for blocks above the mmap limit
    return bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_UP_TO)) and bool(mallopt(_M_MMAP_MAX, 0))
