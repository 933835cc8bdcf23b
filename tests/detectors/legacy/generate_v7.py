"""Write the version-7 cbad snapshot fixtures of ``tests/detectors/test_snapshot_compat.py``.

Version 7 kept the count table as its dense ``2**table_bits`` slots, the per-event arrays from where the next
hops read and the calibration ring as far as its history. Run once with the code that wrote version 7 (main
at 42ca1c6): ``python -m tests.detectors.legacy.generate_v7``. Each case stores the snapshot taken
mid-stream (the field test and its attribute field on, the defaults) and digests of the results and
incident updates the same code produced when it continued on the rest of the stream, fed in batches of 7
events (``generate_v3.write_fixtures``).
"""

from __future__ import annotations

from tests.detectors.legacy.generate_v3 import write_fixtures

CASES = {"cbad_v7_normal": 613, "cbad_v7_incident_open": 728}  # 728: frozen, events held


def main() -> None:
    write_fixtures(7, CASES)


if __name__ == "__main__":
    main()
