"""numba kernels: the only place ``numba.njit`` appears, always through ``kernel``.

Kernels are pure functions over contiguous arrays and scalars: no classes, dicts, logging, I/O or
exceptions. Randomness takes an explicit state array. ``cache=True`` so a second process starts in
well under a second; ``nogil=True`` so worker threads use the second core; fastmath stays off so results
are bit-for-bit reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., Any])


def kernel(func: F) -> F:
    """Compile ``func`` with the project's one numba policy."""
    return cast(F, numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")(func))
