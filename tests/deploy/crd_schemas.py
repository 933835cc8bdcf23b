"""Minimal JSON schemas for the custom resources the manifests use.

kubernetes-validate ships schemas for built-in kinds only. These cover the fields this repository sets
(hand-checked against the CRDs of prometheus-operator ``monitoring.coreos.com/v1`` and
opentelemetry-operator ``opentelemetry.io/v1beta1``): required fields, types, enums, and no unknown
keys where a typo would silently disable the feature (a ServiceMonitor endpoint, a rule).
"""

from __future__ import annotations

from typing import Any

_METADATA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                   "namespace": {"type": "string"}, "labels": {"type": "object"},
                   "annotations": {"type": "object"}},
}
_LABEL_SELECTOR: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                   "matchExpressions": {"type": "array"}},
}
_DURATION = {"type": "string",
             "pattern": r"^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$"}

def _custom_resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The schema of a custom resource: the fixed envelope around the kind's ``spec`` schema."""
    return {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
            "properties": {"apiVersion": {"const": api_version}, "kind": {"const": kind},
                           "metadata": _METADATA, "spec": spec}}


SERVICE_MONITOR = _custom_resource("monitoring.coreos.com/v1", "ServiceMonitor", {
    "type": "object",
    "required": ["selector", "endpoints"],
    "additionalProperties": False,
    "properties": {
        "jobLabel": {"type": "string"},
        "targetLabels": {"type": "array", "items": {"type": "string"}},
        "podTargetLabels": {"type": "array", "items": {"type": "string"}},
        "selector": _LABEL_SELECTOR,
        "namespaceSelector": {"type": "object", "additionalProperties": False,
                              "properties": {"any": {"type": "boolean"},
                                             "matchNames": {"type": "array",
                                                            "items": {"type": "string"}}}},
        "sampleLimit": {"type": "integer"},
        "endpoints": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "port": {"type": "string"}, "targetPort": {"type": ["string", "integer"]},
                    "path": {"type": "string"}, "scheme": {"enum": ["http", "https"]},
                    "interval": _DURATION, "scrapeTimeout": _DURATION,
                    "honorLabels": {"type": "boolean"}, "relabelings": {"type": "array"},
                    "metricRelabelings": {"type": "array"}, "tlsConfig": {"type": "object"},
                },
            },
        },
    },
})

_RULE: dict[str, Any] = {
    "type": "object",
    "required": ["expr"],
    "additionalProperties": False,
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
    "properties": {
        "alert": {"type": "string"}, "record": {"type": "string"},
        "expr": {"type": ["string", "integer"]}, "for": _DURATION, "keep_firing_for": _DURATION,
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

PROMETHEUS_RULE = _custom_resource("monitoring.coreos.com/v1", "PrometheusRule", {
    "type": "object", "required": ["groups"], "additionalProperties": False,
    "properties": {"groups": {"type": "array", "minItems": 1, "items": {
        "type": "object", "required": ["name", "rules"], "additionalProperties": False,
        "properties": {"name": {"type": "string"}, "interval": _DURATION,
                       "limit": {"type": "integer"},
                       "rules": {"type": "array", "items": _RULE}}}}},
})

_PIPELINE = {
    "type": "object", "required": ["receivers", "exporters"], "additionalProperties": False,
    "properties": {k: {"type": "array", "items": {"type": "string"}} for k in ("receivers", "processors",
                                                                                "exporters")},
}

COLLECTOR_CONFIG: dict[str, Any] = {
    "type": "object",
    "required": ["receivers", "exporters", "service"],
    "additionalProperties": False,
    "properties": {
        **{k: {"type": "object"}
           for k in ("receivers", "processors", "exporters", "extensions", "connectors")},
        "service": {
            "type": "object", "required": ["pipelines"], "additionalProperties": False,
            "properties": {"extensions": {"type": "array", "items": {"type": "string"}},
                           "telemetry": {"type": "object"},
                           "pipelines": {"type": "object", "minProperties": 1,
                                         "additionalProperties": _PIPELINE}},
        },
    },
}

OPENTELEMETRY_COLLECTOR = _custom_resource("opentelemetry.io/v1beta1", "OpenTelemetryCollector", {
    "type": "object",
    "required": ["config"],
    "properties": {
        "mode": {"enum": ["daemonset", "deployment", "sidecar", "statefulset"]},
        # v1beta1 takes the collector configuration as an object (v1alpha1 took a string).
        "config": COLLECTOR_CONFIG,
        "resources": {"type": "object", "additionalProperties": False,
                      "properties": {"requests": {"type": "object"}, "limits": {"type": "object"}}},
        "image": {"type": "string"}, "replicas": {"type": "integer"},
        "env": {"type": "array"}, "args": {"type": "object"},
        "securityContext": {"type": "object"}, "managementState": {"enum": ["managed", "unmanaged"]},
    },
})

CUSTOM_RESOURCES = {
    (schema["properties"]["apiVersion"]["const"], schema["properties"]["kind"]["const"]): schema
    for schema in (SERVICE_MONITOR, PROMETHEUS_RULE, OPENTELEMETRY_COLLECTOR)
}
