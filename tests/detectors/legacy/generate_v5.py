"""Write the version-5 cbad snapshot fixtures of ``tests/detectors/test_snapshot_compat.py``.

Version 5 kept the retained events as one joined tail (with each event's length) and the baseline and held
events as references into it. Run once with the code that wrote version 5 (main at 4cd878f):
``python -m tests.detectors.legacy.generate_v5``. Each case stores the snapshot taken mid-stream (the field
test and its attribute field on, the defaults) and digests of the results and incident updates the same
code produced when it continued on the rest of the stream, fed in batches of 7 events
(``generate_v3.continue_in_batches``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from detectors import EventBatch, registry
from tests.detectors.legacy.generate import CBAD_SMALL, cbad_events
from tests.detectors.legacy.generate_v3 import continue_in_batches

HERE = Path(__file__).parent
CASES = {"cbad_v5_normal": 613, "cbad_v5_incident_open": 728}  # 728: frozen, events held


def main() -> None:
    events = cbad_events()
    cases: dict[str, dict[str, Any]] = {}
    for name, cut in CASES.items():
        det = registry.create("cbad", **CBAD_SMALL)
        det.update(EventBatch(events[:cut]))
        data = det.snapshot()
        (HERE / f"{name}.snap").write_bytes(data)
        windows, incidents = continue_in_batches(det, events[cut:])
        cases[name] = {"cut": cut, "file": f"{name}.snap", "sha256": hashlib.sha256(data).hexdigest(),
                       "windows": windows, "incident_states": incidents}
    (HERE / "cases_v5.json").write_text(json.dumps(cases, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(cases)} version-5 snapshots to {HERE}")


if __name__ == "__main__":
    main()
