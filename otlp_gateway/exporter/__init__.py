"""Forwarding downstream over OTLP: bounded queue, persistent spool, retries."""

from otlp_gateway.exporter.exporter import Exporter

__all__ = ["Exporter"]
