"""The detection stage between the receivers and the exporter: routing, scoring off the event loop,
anomaly records, annotation."""

from otlp_gateway.detection.stage import Pipeline
from otlp_gateway.streams.control import PipelineStreamControl

__all__ = ["Pipeline", "PipelineStreamControl"]
