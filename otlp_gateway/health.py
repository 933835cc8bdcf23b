"""Process health state shared by the gRPC health service, ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import enum
import threading


class Phase(enum.Enum):
    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"
    STOPPED = "stopped"


class HealthState:
    """Thread-safe phase plus named readiness checks (``jit``, ``store``, ``receivers``...)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phase = Phase.STARTING
        self._ready: dict[str, bool] = {}
        self._listeners: list = []

    @property
    def phase(self) -> Phase:
        return self._phase

    def set_phase(self, phase: Phase) -> None:
        with self._lock:
            self._phase = phase
            listeners = list(self._listeners)
        for listener in listeners:
            listener(phase)

    def on_change(self, listener) -> None:
        """Call ``listener(phase)`` on every phase change (the gRPC health servicer subscribes)."""
        with self._lock:
            self._listeners.append(listener)

    def set_ready(self, component: str, ready: bool) -> None:
        with self._lock:
            self._ready[component] = ready

    def readiness(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._ready)

    @property
    def serving(self) -> bool:
        return self._phase is Phase.SERVING

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._phase is Phase.SERVING and all(self._ready.values())
