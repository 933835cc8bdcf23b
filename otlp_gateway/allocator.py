"""Large buffers straight from the OS, so the memory a cut upload held goes back at once.

glibc serves allocations below a *dynamic* mmap threshold from its heap, and raises that threshold (up to
32 MiB) each time a large block is freed. Request bodies arrive as many 64-256 KiB pieces from many
connections at once; served from the heap, the pieces of the uploads that are refused or cut leave holes
that the pieces of the others pin, so RSS may stay up after they are freed (20 stalled uploads of 60 MB:
+81 MiB kept in one run, none in another). With a fixed threshold of 64 KiB each such piece is its own
mapping, unmapped when freed.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter; a fixed value also turns off the dynamic adjustment
LARGE_BLOCK_BYTES = 64 * 1024


def return_large_buffers_to_os(threshold: int = LARGE_BLOCK_BYTES) -> bool:
    """Serve allocations of ``threshold`` bytes and more by mmap; False where libc has no ``mallopt``
    (musl, macOS): the process works the same, it only may keep freed memory longer."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, threshold))
    if not done:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused; freed request memory may stay with the allocator")
    return done
