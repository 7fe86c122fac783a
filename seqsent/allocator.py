"""glibc malloc settings for seqsent's entry points, called first thing in a command (not on import).

PyTorch's CPU allocator does not cache, and glibc hands large freed blocks back to the kernel, so
every training step page-faults its large tensors in again (figures: docs/speed.md). The entry
points therefore let glibc keep up to 1 GiB of freed memory for reuse, which is what this setting does
for any process when it is in the environment before the process starts:

    GLIBC_TUNABLES=glibc.malloc.top_pad=1073741824:glibc.malloc.trim_threshold=1073741824:\
    glibc.malloc.mmap_threshold=33554432

Any `glibc.malloc.*` tunable in `GLIBC_TUNABLES` leaves malloc to it: `GLIBC_TUNABLES=glibc.malloc.check=0`
(a tunable at its default value) keeps glibc's own behaviour. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform

PAD_MB = 1024
# mallopt parameters (malloc.h); glibc caps the mmap threshold at 32 MiB on 64-bit machines
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD_MAX = 32 << 20


def keep_freed_memory() -> int:
    """Let glibc keep up to `PAD_MB` MiB of freed memory (top pad and trim threshold) and serve blocks
    up to 32 MiB from that reusable heap; returns the pad set in MiB, or 0 when malloc was left alone."""
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "") or platform.libc_ver()[0] != "glibc":
        return 0
    libc = ctypes.CDLL(None)  # the running process's symbols: glibc's mallopt among them
    pad = PAD_MB << 20
    settings = ((M_TOP_PAD, pad), (M_TRIM_THRESHOLD, pad), (M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX))
    ok = all(libc.mallopt(param, value) for param, value in settings)
    return PAD_MB if ok else 0
