"""Helpers of the deployment tests: repository paths, required tools, Kustomize rendering, and the
metric names and labels the gateway really exposes (read from a live ``GatewayMetrics`` exposition)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
MONITORING = K8S / "monitoring"
OVERLAYS = ("sidecar", "sidecar-operator", "standalone", "scaleout")


def require_tool(name: str) -> str:
    """Path of a command-line tool. Missing: skip locally, fail under CI=true (CI must install it)."""
    venv_bin = Path(sys.executable).parent
    found = shutil.which(name, path=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    if found:
        return found
    message = f"{name} is not installed (see docs/operations.md, 'CI requirements')"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def run(cmd: list[str], cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


@cache
def render(directory: str) -> tuple[dict[str, Any], ...]:
    """``kubectl kustomize`` of a directory under k8s/, as parsed objects."""
    kubectl = require_tool("kubectl")
    result = run([kubectl, "kustomize", str(K8S / directory)])
    assert result.returncode == 0, f"kubectl kustomize k8s/{directory} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def objects(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in objects(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [c for c in pod_spec(workload)["containers"] if c["name"] == name]
    assert matches, f"{workload['metadata']['name']} has no container {name}"
    return matches[0]


# ------------------------------------------------------------------------------ emitted metric series
@dataclass(frozen=True)
class Series:
    name: str
    labels: frozenset[str]


@cache
def emitted_series() -> dict[str, Series]:
    """Every series name a gateway can expose, with its label names.

    Names come from the text exposition of a fresh ``GatewayMetrics`` (so a renamed or removed metric
    breaks the rules and dashboard tests). A labelled family has no samples until first used, so label
    names come from the collectors themselves.
    """
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from otlp_gateway.telemetry.metrics import GatewayMetrics

    metrics = GatewayMetrics()
    labels_of: dict[str, frozenset[str]] = {}
    for collector in list(metrics.registry._collector_to_names):  # no public accessor for label names
        for name in metrics.registry._collector_to_names[collector]:
            labels_of[name] = frozenset(getattr(collector, "_labelnames", ()))
    exposition = generate_latest(metrics.registry).decode()
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count",
                                                                                "_created"),
                "summary": ("", "_sum", "_count", "_created"), "unknown": ("",)}
    series: dict[str, Series] = {}
    for family in text_string_to_metric_families(exposition):
        for suffix in suffixes[family.type]:
            name = family.name + suffix
            labels = labels_of.get(name, labels_of.get(family.name, frozenset()))
            if suffix == "_bucket":
                labels |= {"le"}
            series[name] = Series(name, labels)
    return series


SCRAPE_LABELS = frozenset({"job", "instance", "__name__"})
"""Labels Prometheus adds to every scraped series."""


# ------------------------------------------------------------------------------------- PromQL reading
_FUNCTION_OR_AGGREGATION = re.compile(r"\b([a-zA-Z_][a-zA-Z0-9_]*)\s*\(")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*\"((?:[^\"\\]|\\.)*)\"")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on",
                       "ignoring", "group_left", "group_right", "atan2"})


@dataclass(frozen=True)
class Reference:
    """A series named by a query: an exact name, or a ``{__name__=~"..."}`` pattern."""

    name: str | None
    name_pattern: str | None
    labels: frozenset[str]


def references(expr: str) -> list[Reference]:
    """The series a PromQL expression reads, with the label names its selectors and groupings use.

    A small reader for the PromQL this repository writes (no nested braces, no @ modifiers), not a
    full parser; the tests also run promtool over the same rules.
    """
    refs: list[Reference] = []
    grouping = frozenset(label.strip() for m in _GROUPING.finditer(expr)
                         for label in m.group(2).split(",") if label.strip())
    text = expr
    for match in _SELECTOR.finditer(expr):
        name, body = match.group(1), match.group(2)
        matchers = {m.group(1): (m.group(2), m.group(3)) for m in _MATCHER.finditer(body)}
        pattern = None
        if "__name__" in matchers:
            op, value = matchers["__name__"]
            assert op == "=~", f"unsupported __name__ matcher in {expr!r}"
            pattern = value
        refs.append(Reference(name if name not in _KEYWORDS else None, pattern,
                              frozenset(matchers) - {"__name__"}))
    text = _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\"(?:[^\"\\]|\\.)*\"", " ", text)
    text = _FUNCTION_OR_AGGREGATION.sub(" ( ", text)
    named = {r.name for r in refs if r.name}
    for ident in _IDENT.findall(text):
        if ident not in _KEYWORDS and ident not in named and not re.fullmatch(r"\d+(e\d+)?", ident):
            refs.append(Reference(ident, None, frozenset()))
            named.add(ident)
    # Grouping labels must exist on the series being aggregated: attach them to every reference.
    return [Reference(r.name, r.name_pattern, r.labels | grouping) for r in refs]


def resolve(ref: Reference, known: dict[str, Series]) -> list[Series]:
    """The known series a reference names (several for a pattern); empty when it names none."""
    if ref.name_pattern is not None:
        return [s for name, s in known.items() if re.fullmatch(ref.name_pattern, name)]
    return [known[ref.name]] if ref.name in known else []


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))
