"""Write the version-8 cbad snapshot fixtures of ``tests/detectors/test_snapshot_compat.py``.

Version 8 kept the count table as its nonzero slots and their counts, the newest retained events as joined
bytes with their lengths and the older ones as sealed blocks, the field test's reference and pending codes
per event. Run once with the code that wrote version 8 (main at 4c8334a):
``python -m tests.detectors.legacy.generate_v8``. Each case stores the snapshot taken mid-stream (the field
test and its attribute field on, the defaults) and digests of the results and incident updates the same code
produced when it continued on the rest of the stream, fed in batches of 7 events
(``generate_v3.write_fixtures``).
"""

from __future__ import annotations

from tests.detectors.legacy.generate_v3 import write_fixtures

CASES = {"cbad_v8_normal": 613, "cbad_v8_incident_open": 728}  # 728: frozen, events held


def main() -> None:
    write_fixtures(8, CASES)


if __name__ == "__main__":
    main()
