"""In-process ends of the pipeline for benches that drive one part of it alone."""

from __future__ import annotations

from otlp_gateway.batch import TelemetryBatch, Unreserved


class NullConsumer:
    """Takes every batch and does nothing with it (the exporter's place, out of the figures)."""

    async def consume(self, batch: TelemetryBatch) -> None:
        return None

    def reserve(self, batch: TelemetryBatch) -> Unreserved:
        return Unreserved(self)
