"""Write the version-3 cbad snapshot fixtures of ``tests/detectors/test_snapshot_compat.py``.

Version 3 kept the retained events as separate byte strings (tail, baseline and held events each joined,
with their lengths). Run once with the code that wrote version 3 (main at 193033f):
``python -m tests.detectors.legacy.generate_v3``. Each case stores the snapshot taken mid-stream (with the
field test on, the default) and digests of the results and incident updates the same code produced when it
continued on the rest of the stream, fed in batches of 7 events.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from detectors import EventBatch, registry
from tests.detectors.legacy.generate import CBAD_SMALL, cbad_events

HERE = Path(__file__).parent
CASES = {"cbad_v3_normal": 613, "cbad_v3_incident_open": 728}  # 728: frozen, 20 events held
BATCH = 7


def digest(item: Any) -> str:
    text = json.dumps(dataclasses.asdict(item), sort_keys=True, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def incident_state_digest(update: Any) -> str:
    """An incident update without its explanation (``fields``, ``summary``): what a snapshot must carry on
    bit for bit; later code may word the explanation differently (and has: 2026-12-05)."""
    state = dataclasses.asdict(update)
    state.pop("fields")
    state.pop("summary")
    return hashlib.sha256(json.dumps(state, sort_keys=True, allow_nan=True).encode()).hexdigest()[:12]


def continue_in_batches(det: Any, events: list[bytes]) -> tuple[list[str], list[str]]:
    """Digests of the windows and of the incident updates' states (:func:`incident_state_digest`) of
    ``events`` fed in batches of ``BATCH``."""
    det.event_bits_every_window = True  # the digests hold every window's event_bits table (older code's only)
    windows: list[str] = []
    incidents: list[str] = []
    for i in range(0, len(events), BATCH):
        out = det.update(EventBatch(events[i:i + BATCH]))
        windows += map(digest, out)
        incidents += map(incident_state_digest, out.incidents)
    return windows, incidents


def write_fixtures(version: int, cuts: dict[str, int]) -> None:
    """Snapshot the stream at each cut with the code on the path, continue it, and write the snapshots and
    ``cases_v<version>.json`` (the digests of what followed)."""
    events = cbad_events()
    cases: dict[str, dict[str, Any]] = {}
    for name, cut in cuts.items():
        det = registry.create("cbad", **CBAD_SMALL)
        det.update(EventBatch(events[:cut]))
        data = det.snapshot()
        (HERE / f"{name}.snap").write_bytes(data)
        windows, incidents = continue_in_batches(det, events[cut:])
        cases[name] = {"cut": cut, "file": f"{name}.snap", "sha256": hashlib.sha256(data).hexdigest(),
                       "windows": windows, "incident_states": incidents}
    (HERE / f"cases_v{version}.json").write_text(json.dumps(cases, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(cases)} version-{version} snapshots to {HERE}")


def main() -> None:
    write_fixtures(3, CASES)


if __name__ == "__main__":
    main()
