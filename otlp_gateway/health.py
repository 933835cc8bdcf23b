"""Process health state shared by the gRPC health service, ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable


class Phase(enum.Enum):
    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"
    STOPPED = "stopped"


class HealthState:
    """Thread-safe phase, named readiness flags (``jit``, ``store``, ``receivers``...) and named conditions
    that make the gateway unready while they hold (``ingest``: every request is being refused), each with
    the reason ``/readyz`` shows."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phase = Phase.STARTING
        self._ready: dict[str, bool] = {}
        self._conditions: dict[str, Callable[[], str | None]] = {}
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

    def add_condition(self, component: str, reason: Callable[[], str | None]) -> None:
        """``reason()`` returns why ``component`` makes the gateway unready now, or None."""
        with self._lock:
            self._conditions[component] = reason

    def reasons(self) -> dict[str, str]:
        """What makes the gateway unready now: a flag not yet ready, or a condition that holds."""
        with self._lock:
            flags = dict(self._ready)
            conditions = dict(self._conditions)
        found = {name: "not ready yet" for name, ok in flags.items() if not ok}
        for name, reason in conditions.items():
            why = reason()
            if why:
                found[name] = why
        return found

    def readiness(self) -> dict[str, bool]:
        with self._lock:
            flags = dict(self._ready)
            conditions = dict(self._conditions)
        flags.update({name: reason() is None for name, reason in conditions.items()})
        return flags

    @property
    def serving(self) -> bool:
        return self._phase is Phase.SERVING

    @property
    def ready(self) -> bool:
        return self._phase is Phase.SERVING and not self.reasons()

    def liveness_answer(self) -> tuple[dict[str, str], int]:
        """``/healthz``: its JSON body and HTTP status (200 while serving, 503 while starting or draining)."""
        phase = self._phase
        serving = phase is Phase.SERVING
        return {"status": "ok" if serving else "unavailable", "phase": phase.value}, 200 if serving else 503

    def readiness_answer(self) -> tuple[dict[str, object], int]:
        """``/readyz``: its JSON body and HTTP status (200 when serving and nothing makes it unready)."""
        reasons = self.reasons()
        ready = self.serving and not reasons
        body: dict[str, object] = {"status": "ready" if ready else "not_ready", "phase": self._phase.value,
                "components": self.readiness(), "reasons": reasons}
        return body, 200 if ready else 503
