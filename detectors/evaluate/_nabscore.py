"""Load the shared NAB scorer (tools/nab_score.py, standard library only) as a module."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from types import ModuleType

from detectors.evaluate import _paths


def _load(name: str, path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@cache
def scorer() -> ModuleType:
    return _load("nab_score", str(_paths.nab_scorer()))


@cache
def zscore_baseline() -> ModuleType:
    scorer()  # the baseline imports nab_score by name
    return _load("nab_zscore_baseline", str(_paths.nab_zscore_baseline()))
