"""glibc's allocator kept from handing a large request's buffers back to the kernel after each request.

By default glibc serves an allocation over 128 KiB with its own ``mmap`` (raised, at best, to the
largest one freed so far) and gives the top of the heap back once more than twice that is free. A
sealed 224x224x3 image makes two such buffers per request (the body, its plaintext), freed
together, so every request mapped them again and touched each page anew: measured on the GCP
host, 272 page faults per request and a p50 of 2.03 ms, against 0.05 faults and 0.90 ms with the
limits below. :func:`keep_large_buffers` sets them once, on the first body over glibc's default
threshold (``ctypes`` costs the cold start 2 ms, and a small model never needs it); elsewhere than
glibc it does nothing.
"""

from __future__ import annotations

import os

LARGE_BODY = 128 * 1024
"""glibc's default ``mmap`` threshold: a body over it is the first that needs the limits below."""
MMAP_THRESHOLD = 32 * 1024 * 1024
"""The largest ``mmap`` threshold glibc allows on 64-bit: any smaller allocation reuses the heap."""
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD
"""Free memory at the heap's top kept for the next request: what glibc's own rule keeps for the
largest buffer it serves from the heap."""
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


class _State:
    done = False


def keep_large_buffers() -> bool:
    """Set glibc's limits (once per process); True where they were set."""
    if _State.done:
        return False
    _State.done = True
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError, AttributeError):
        glibc = None
    if not glibc:  # another C library: its allocator has its own rules
        return False
    import ctypes  # here, not at cold start

    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    mapped = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    return bool(mapped) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
