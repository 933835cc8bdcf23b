"""Prints the measurements of the reliability cases as the table of docs/reliability.md."""

from __future__ import annotations

import os
from pathlib import Path

from tests.reliability.support import RESULTS, render_table


def pytest_terminal_summary(terminalreporter) -> None:
    if not RESULTS:
        return
    table = render_table(RESULTS)
    terminalreporter.write_sep("-", "reliability measurements (docs/reliability.md)")
    terminalreporter.write_line(table)
    target = os.environ.get("RELIABILITY_TABLE")
    if target:
        Path(target).write_text(table + "\n")
