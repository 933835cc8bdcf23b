"""Write the legacy snapshot fixtures of ``tests/detectors/test_snapshot_compat.py``.

Run once with the code that wrote the snapshots users already have in their stores (main at 380c25a, before
the shared snapshot codec): ``python -m tests.detectors.legacy.generate`` from a checkout of that commit.
Each case stores the snapshot taken mid-stream and digests of the results that the *same* code produced
when it continued on the rest of the stream, so a restore by later code can be checked against them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from detectors import registry

HERE = Path(__file__).parent
CBAD_SMALL = {"profile": "sensitive", "baseline": 100, "window": 20, "hop": 5, "seed": 1}


def _digest(result) -> str:
    text = json.dumps(dataclasses.asdict(result), sort_keys=True, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cbad_events() -> list[bytes]:
    try:
        from detectors.synthetic import synthetic_logs
    except ModuleNotFoundError:  # the code the snapshots were written with called it detectors.testing
        from detectors.testing import synthetic_logs  # type: ignore[no-redef]

    return synthetic_logs(1400, seed=9, anomalies=[*range(700, 704), *range(1300, 1303)])


def numeric_series() -> tuple[np.ndarray, np.ndarray]:
    x = 50.0 + np.random.default_rng(6).normal(0.0, 1.0, 4000)
    x[3500:3510] -= 12.0
    return x, 1.7e9 + 60.0 * np.arange(x.size)


def _write(name: str, data: bytes, after: list) -> dict:
    (HERE / f"{name}.snap").write_bytes(data)
    return {"file": f"{name}.snap", "sha256": hashlib.sha256(data).hexdigest(),
            "continuation": [_digest(r) for r in after],
            "p_values": [r.p_value for r in after],
            "calibration_windows": [r.figures.get("calibration_windows", 0.0) for r in after],
            "anomalies_after": sum(r.is_anomaly for r in after),
            "flagged_after": [r.end_offset for r in after if r.is_anomaly]}


def main() -> None:
    cases: dict[str, dict] = {}
    events = cbad_events()
    for name, cut in (("cbad_normal", 613), ("cbad_during_anomaly", 712)):
        det = registry.create("cbad", **CBAD_SMALL)
        det.update(events[:cut])
        data = det.snapshot()
        cases[name] = {"kind": "cbad", "cut": cut, **_write(name, data, det.update(events[cut:]))}
    x, t = numeric_series()
    cut = 1777
    det = registry.create("numeric", profile="sensitive")
    det.update(x[:cut], timestamps=t[:cut])
    data = det.snapshot()
    cases["numeric"] = {"kind": "numeric", "cut": cut,
                        **_write("numeric", data, det.update(x[cut:], timestamps=t[cut:]))}
    (HERE / "cases.json").write_text(json.dumps(cases, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(cases)} legacy snapshots to {HERE}")


if __name__ == "__main__":
    main()
