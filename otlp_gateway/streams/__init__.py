"""Streams: the stream key and router, per-stream settings, the live-stream state, and stream control."""
