"""The detector library stands alone: importable, usable and testable without the gateway installed.

Each check runs a fresh interpreter whose import system refuses ``otlp_gateway`` and the wire libraries
(the import-linter contract's forbidden list) before anything is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BLOCKED = ("otlp_gateway", "grpc", "google", "opentelemetry")
BLOCKER = f"""
import importlib.abc
import sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"{{name}} is not installed here", name=name)
        return None

sys.meta_path.insert(0, Refuse())
BLOCKED = {BLOCKED!r}
"""


def _run(code: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", BLOCKER + code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_the_blocker_blocks():
    proc = _run("import otlp_gateway")
    assert proc.returncode != 0 and "otlp_gateway is not installed here" in proc.stderr


def test_detectors_import_and_detect_without_the_gateway():
    proc = _run("""
import json
import numpy as np
from detectors import EventBatch, registry
from detectors.canonical import canonical_log
from detectors.synthetic import synthetic_logs

events = synthetic_logs(700, seed=3, anomalies=range(650, 654))
cbad = registry.create("cbad", profile="sensitive", seed=1, baseline=100, window=20, hop=5)
cbad_hits = [r.end_offset for r in cbad.update(EventBatch(events)) if r.is_anomaly]
x = 50 + np.random.default_rng(1).normal(0, 1, 3000)
x[2700] = 80.0
numeric = registry.create("numeric", profile="balanced")
numeric_hits = [r.end_offset for r in numeric.update(EventBatch(x)) if r.is_anomaly]
restored = registry.restore("cbad", cbad.snapshot())
blocked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(json.dumps({"cbad": cbad_hits, "numeric": numeric_hits, "kinds": registry.available(),
                  "restored": restored.events_seen, "blocked": blocked,
                  "event": canonical_log("GET /a 200", 9, {"user_id": 7}).decode()}))
""")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["kinds"] == ["cbad", "numeric"] and out["blocked"] == []
    assert out["cbad"] and all(end > 650 for end in out["cbad"])
    assert out["numeric"] and all(end > 2700 for end in out["numeric"])
    assert out["restored"] == 700 and out["event"].startswith("INFO GET")


@pytest.mark.slow  # runs part of the library's suite in a child interpreter
def test_the_library_tests_run_without_the_gateway():
    """``python -m pytest tests/detectors`` works where the gateway is not installed (a fast subset here:
    the conformance suite and the snapshot formats; the whole directory runs the same way)."""
    proc = _run("""
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "tests/detectors/test_conformance.py",
                      "tests/detectors/test_snapshot_compat.py"]))
""")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "error" not in proc.stdout.lower()
