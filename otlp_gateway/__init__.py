"""Driftlock OTLP gateway: receive, detect, annotate, forward."""

__version__ = "0.1.0"
