"""Detection pipeline: stream routing, extraction, detection off the event loop, annotation."""

from otlp_gateway.pipeline.control import PipelineStreamControl
from otlp_gateway.pipeline.pipeline import Pipeline

__all__ = ["Pipeline", "PipelineStreamControl"]
