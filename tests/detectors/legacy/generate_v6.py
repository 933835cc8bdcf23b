"""Write the version-6 cbad snapshot fixtures of ``tests/detectors/test_snapshot_compat.py``.

Version 6 kept the retained events in the event store's blocks (``detectors.event_blocks``), the per-event
arrays (taint, code lengths, times) from the tail's first event on and the calibration ring at its full
capacity. Run once with the code that wrote version 6 (main at 21b95c5):
``python -m tests.detectors.legacy.generate_v6``. Each case stores the snapshot taken mid-stream (the field
test and its attribute field on, the defaults) and digests of the results and incident updates the same
code produced when it continued on the rest of the stream, fed in batches of 7 events
(``generate_v3.write_fixtures``).
"""

from __future__ import annotations

from tests.detectors.legacy.generate_v3 import write_fixtures

CASES = {"cbad_v6_normal": 613, "cbad_v6_incident_open": 728}  # 728: frozen, events held


def main() -> None:
    write_fixtures(6, CASES)


if __name__ == "__main__":
    main()
