"""A clone without the shared datasets: the tests that need them skip with a reason naming the missing
path, and fail under CI=true (as the service fixtures do); the evaluation writes docs only when asked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.gateway import REPO

pytestmark = pytest.mark.slow  # each test runs pytest or the evaluation in a child interpreter

NEEDS_DATA = "tests/evaluate/test_evaluate.py::test_nab_scoring_is_causal"


def run_pytest(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["DRIFTLOCK_SHARED"] = str(tmp_path / "no-shared-here")
    if ci is not None:
        env["CI"] = ci
    command = [sys.executable, "-m", "pytest", "-q", "-rsf", "-p", "no:cacheprovider", NEEDS_DATA]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)


def test_missing_datasets_skip_with_the_path_outside_ci(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout
    assert f"missing {tmp_path / 'no-shared-here' / 'datasets' / 'nab' / 'data'}" in done.stdout


def test_missing_datasets_fail_under_ci(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "true")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed" in done.stdout
    assert str(tmp_path / "no-shared-here" / "datasets" / "nab" / "data") in done.stdout


@pytest.mark.parametrize("write", [False, True])
def test_evaluation_writes_docs_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                write: bool) -> None:
    from detectors.evaluate import __main__ as cli
    from detectors.evaluate import _paths

    docs = tmp_path / "docs"
    docs.mkdir()
    monkeypatch.setattr(_paths, "docs_dir", lambda: docs)
    argv = ["stationary", "--profile", "sensitive", "--quiet"] + (["--write-docs"] if write else [])
    assert cli.main(argv) == 0
    assert (docs / "quality.md").is_file() == write
