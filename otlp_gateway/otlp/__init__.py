"""The OTLP codec: per-signal facts, validation, OTLP/JSON, the numba wire walker, extraction, annotation.

Everything here is a pure function of request bytes or messages (no I/O): the receivers and the exporter
call it; it never calls them. The entry point for a received request is ``codec.RequestCodec.decode``: one
walk of the bytes validates, counts and (with detection on) extracts the per-stream events.
"""
