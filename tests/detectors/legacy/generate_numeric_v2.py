"""Writes the version-2 numeric snapshots (before the mean model) and ``numeric_v2.json``.

Run once with the code of integ2 at ebf9e8a (``python -m tests.detectors.legacy.generate_numeric_v2``): each
case is the snapshot of a ``sensitive`` detector fed ``numeric_series()`` up to its cut and what that code
returned when it went on with the rest (the windows' offsets, p-values, verdicts and incident numbers, and
the incident updates). ``test_snapshot_compat`` restores them with today's code and expects the same.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from detectors import EventBatch, registry
from tests.detectors.legacy.generate import numeric_series

HERE = Path(__file__).parent
CUTS = {"numeric_v2_normal": 2400, "numeric_v2_incident_open": 3530}


def continuation(det, x: np.ndarray, t: np.ndarray) -> dict:
    out = det.update(EventBatch(x, t))
    return {"windows": [[r.end_offset, r.p_value, r.is_anomaly, r.incident_seq, r.severity] for r in out],
            "incidents": [[u.seq, u.status, u.opened_offset, u.last_anomalous_offset, u.anomalous_windows]
                          for u in out.incidents]}


def main() -> None:
    x, t = numeric_series()
    cases = {}
    for name, cut in CUTS.items():
        det = registry.create("numeric", profile="sensitive")
        det.update(EventBatch(x[:cut], t[:cut]))
        data = det.snapshot()
        (HERE / f"{name}.snap").write_bytes(data)
        cases[name] = {"file": f"{name}.snap", "sha256": hashlib.sha256(data).hexdigest(), "cut": cut,
                       "open_incident": det.open_incident_seq, **continuation(det, x[cut:], t[cut:])}
    (HERE / "numeric_v2.json").write_text(json.dumps(cases, indent=1) + "\n")


if __name__ == "__main__":
    main()
