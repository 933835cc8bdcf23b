"""numba's cache of compiled kernels, and compiling the kernels ahead of the first request.

The cache lives in a writable per-user cache directory, never beside the installed sources. numba's
default writes ``__pycache__/*.nbi`` and ``*.nbc`` next to each kernel's source file: that fails where
site-packages is read-only, and leaves directories behind that pip does not remove, which a later
editable install of the same venv then imports as empty namespace packages (``cannot import name ...``).

numba reads ``NUMBA_CACHE_DIR`` when it is imported and again before each compilation, but a kernel binds
its cache location when its module is imported (``@njit(cache=True)`` runs at import): the directory must
be set before any kernel module is imported, which ``otlp-gateway`` does first thing.

numba checks a cached kernel against its own source file's time stamp only: a cached caller outlives a
change to a callee in another file, and loading it then crashes the process. The directories this module
chooses are therefore keyed by a digest of every kernel source file, so changed kernels (an upgrade, a
checkout) never meet a cache compiled from other sources. ``NUMBA_CACHE_DIR`` set by the user is taken as
it is (numba's own semantics).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib.util
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import platformdirs

from otlp_gateway.health import HealthState

log = logging.getLogger(__name__)

APP_NAME = "driftlock-otlp-gateway"
KERNEL_MODULES = ("detectors._kernels.", "otlp_gateway.otlp._kernels.")


def cache_dir(configured: str | None, env: Mapping[str, str] | None = None) -> Path:
    """``detection.jit_cache_dir/<kernel digest>`` when set, else ``NUMBA_CACHE_DIR``, else
    ``<user cache dir>/numba/<kernel digest>``."""
    env = os.environ if env is None else env
    if configured:
        return Path(configured).expanduser() / kernel_sources_digest()
    if env.get("NUMBA_CACHE_DIR"):
        return Path(env["NUMBA_CACHE_DIR"])
    return Path(platformdirs.user_cache_dir(APP_NAME)) / "numba" / kernel_sources_digest()


def kernel_sources_digest() -> str:
    """16 hex digits over the source of every kernel module (found without importing numba)."""
    digest = hashlib.sha256()
    for package in ("detectors._kernels", "otlp_gateway.otlp._kernels"):
        spec = importlib.util.find_spec(package)
        locations = spec.submodule_search_locations if spec is not None else None
        for directory in sorted(locations or []):
            for source in sorted(Path(directory).glob("*.py")):
                digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


def use_cache_dir(path: Path) -> Path:
    """Make ``path`` numba's cache directory for the kernels this process imports from now on."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:  # numba skips a cache directory it cannot write to
        log.warning("JIT cache directory %s is not writable (%s): numba falls back to its defaults or "
                    "compiles the kernels at every start", path, exc.strerror)
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    log.info("JIT cache directory: %s", path)
    if "numba" in sys.modules:
        from numba.core import config

        config.reload_config()
    loaded = sorted(name for name in sys.modules if name.startswith(KERNEL_MODULES))
    if loaded:
        log.warning("kernels already imported keep their cache location (%s); set the JIT cache directory "
                    "before importing them", ", ".join(loaded))
    return path


WarmUpProgress = Callable[[int, int, str, float | None], None]
"""``(step, steps, group, seconds)``: called before a kernel group compiles (seconds None) and after it."""


def warm_up_kernels(seed: int = 0, progress: WarmUpProgress | None = None) -> None:
    """Run every registered detector on its example events once, the masking of canonical text and the wire
    extraction, so every kernel is compiled (or loaded from the cache) before a request needs it;
    ``progress`` hears about each group."""
    from detectors import registry
    from detectors.canonical._mask import warm_up as warm_up_masking
    from otlp_gateway.otlp.codec import warm_up as warm_up_codec

    groups: list[tuple[str, Callable[[], None]]] = [
        (f"{kind} detector", functools.partial(registry.exercise, kind, seed))
        for kind in registry.available()]
    groups.append(("canonical masking", warm_up_masking))
    groups.append(("OTLP codec", warm_up_codec))
    for step, (name, run) in enumerate(groups, start=1):
        if progress:
            progress(step, len(groups), name, None)
        started = time.perf_counter()
        run()
        if progress:
            progress(step, len(groups), name, time.perf_counter() - started)


class KernelWarmup:
    """A component: compiles the kernels on a background thread at start; readiness ``jit`` follows.

    Requests are served meanwhile: detection waits for the kernels, ingest does not
    (``detection.budget_ms``)."""

    def __init__(self, health: HealthState, seed: int, enabled: bool = True):
        self._health = health
        self._seed = seed
        self._enabled = enabled
        self._thread: threading.Thread | None = None
        self._done = threading.Event()

    async def start(self) -> None:
        if self._thread is not None:
            return
        if not self._enabled:
            self._health.set_ready("jit", True)
            self._done.set()
            return
        self._health.set_ready("jit", False)
        self._thread = threading.Thread(target=self._run, name="jit-warmup", daemon=True)
        self._thread.start()

    async def shutdown(self, grace: float = 0.0) -> None:
        """Nothing to drain: compiling holds no data (the daemon thread ends with the process)."""

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            warm_up_kernels(self._seed)
        except Exception:  # warm-up failing must not kill the process; detection compiles lazily then
            log.exception("JIT warm-up failed; kernels will compile on first use")
        self._health.set_ready("jit", True)
        self._done.set()
        log.info("detector kernels ready in %.2f s", time.perf_counter() - started)

    async def finished(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the kernels; True when they are ready."""
        if self._done.is_set():
            return True
        return await asyncio.to_thread(self._done.wait, timeout)
