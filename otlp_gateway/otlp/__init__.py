"""The OTLP codec: per-signal facts, validation, OTLP/JSON, the numba wire walker, extraction, annotation.

Everything here is a pure function of request bytes or messages (no I/O): the receivers and the exporter
call it; it never calls them.
"""
