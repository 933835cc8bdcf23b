"""Write the version-5 cbad snapshot fixtures of ``tests/detectors/test_snapshot_compat.py``.

Version 5 kept the retained events as one joined tail (with each event's length) and the baseline and held
events as references into it. Run once with the code that wrote version 5 (main at 4cd878f):
``python -m tests.detectors.legacy.generate_v5``. Each case stores the snapshot taken mid-stream (the field
test and its attribute field on, the defaults) and digests of the results and incident updates the same
code produced when it continued on the rest of the stream, fed in batches of 7 events
(``generate_v3.write_fixtures``).
"""

from __future__ import annotations

from tests.detectors.legacy.generate_v3 import write_fixtures

CASES = {"cbad_v5_normal": 613, "cbad_v5_incident_open": 728}  # 728: frozen, events held


def main() -> None:
    write_fixtures(5, CASES)


if __name__ == "__main__":
    main()
