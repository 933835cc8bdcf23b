"""Inside a detector process: the detectors of one shard's streams, driven over a pipe.

The process imports the detectors library only (and ``streams.windows``, which imports nothing else of the
gateway; no gRPC). It answers one message at a time, in the order the shard thread sends them, so each
detector sees its events in arrival order exactly as it would on the shard thread itself. A message is
``(dropped, calls)``:

- ``dropped``: ids of detectors the gateway let go of (evicted streams): forgotten first;
- ``calls``: a list of ``(init, op, detector_id, args)`` (or ``(None, "held", 0, ())``: how many detectors
  the process holds), run in order (one message carries the updates
  of several streams of a shard: one round trip instead of one per stream):
  - ``init``: ``None``, or how to make detector ``detector_id`` before the op: ``("create", kind, kwargs)``
    or ``("restore", kind, kwargs, snapshot)`` (a snapshot that does not restore is answered
    ``restore_failed`` and no detector is made);
  - ``op``: ``"ready"`` (nothing more), ``"update"`` (``args``: events, stamps; answered with the windows
    as ``streams.windows.WindowRows``' parts), ``"snapshot"``, or an
    incident action (``"accept"``, ``"resolve"``, ``"mark_false_positive"``; ``args``: the incident's
    number).

The answer is a list, one per call: ``("ok", result, stats)``, ``("error", exception)`` (the op raised it:
the gateway raises it again) or ``("restore_failed", reason)``. ``stats`` is what the gateway reads of a
detector between calls: ``(events_seen, warmed_up, skipped_points, config_hash)``.
"""

from __future__ import annotations

import os
import pickle
from multiprocessing.connection import Connection
from typing import Any

from detectors import EventBatch, registry
from otlp_gateway.streams.windows import window_row

NICENESS = 10
"""Detection only: the gateway's own process (receiving, forwarding) goes first on a busy machine."""
ACTIONS = ("accept", "resolve", "mark_false_positive")
PICKLE_PROTOCOL = 5


def serve(conn: Connection) -> None:
    """The process's main loop: until the pipe closes or ``None`` arrives."""
    os.nice(NICENESS)
    _warm_up()
    conn.send_bytes(pickle.dumps(("ok", os.getpid(), None), PICKLE_PROTOCOL))
    detectors: dict[int, Any] = {}
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except EOFError:
            return
        if message is None:
            return
        dropped, calls = message
        for gone in dropped:
            detectors.pop(gone, None)
        answers = [_answer(detectors, *call) for call in calls]
        try:
            data = pickle.dumps(answers, PICKLE_PROTOCOL)
        except Exception as exc:  # an exception that does not pickle: its text still reaches the gateway
            data = pickle.dumps([a if a[0] == "ok" else ("error", RuntimeError(f"{a[1]!r} ({exc})"))
                                 for a in answers], PICKLE_PROTOCOL)
        conn.send_bytes(data)


def _answer(detectors: dict[int, Any], init: tuple[Any, ...] | None, op: str, detector_id: int,
            args: tuple[Any, ...]) -> tuple[Any, ...]:
    if op == "held":  # of the process, not of a detector
        return ("ok", len(detectors), None)
    if init is not None:
        if init[0] == "create":
            detectors[detector_id] = registry.create(init[1], **init[2])
        else:
            try:
                detectors[detector_id] = registry.restore(init[1], init[3])
            except Exception as exc:  # the gateway starts the stream over, as it does in-process
                return ("restore_failed", f"{type(exc).__name__}: {exc}")
    try:
        detector = detectors[detector_id]
        result = _run(detector, op, args)
    except Exception as exc:
        return ("error", exc)
    return ("ok", result, (detector.events_seen, bool(detector.warmed_up), dict(detector.skipped_points),
                           detector.config_hash))


def _run(detector: Any, op: str, args: tuple[Any, ...]) -> Any:
    if op == "update":
        events, stamps = args
        output = detector.update(EventBatch(events, stamps))
        # the windows as rows of plain values, the anomalous ones whole, and the incident updates: the
        # gateway reads a window whole (its explanation, most of its bytes) only when it is anomalous, and
        # unpickling every window as a ``WindowResult`` cost it more than the rest of the round trip
        return ([window_row(w) for w in output], [w for w in output if w.is_anomaly],
                list(getattr(output, "incidents", ())))
    if op == "snapshot":
        return detector.snapshot()
    if op in ACTIONS:
        return getattr(detector, op)(*args)
    if op == "ready":
        return None
    raise ValueError(f"unknown detector op {op!r}")


def _warm_up() -> None:
    """Load the compiled kernels (numba's cache, ``NUMBA_CACHE_DIR`` inherited) before the first stream."""
    for kind in registry.available():
        registry.exercise(kind)
