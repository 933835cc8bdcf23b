"""Incident scenarios through a real gateway: seeded faults and controls sent with the OpenTelemetry SDK's
own OTLP/gRPC exporters, event times set by the generator, incidents read back from the REST API.

``python bench/scenarios/run.py`` runs them and prints the table; ``--write-docs`` puts it into
``docs/quality.md`` between the scenario markers."""
