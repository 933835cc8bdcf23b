"""Errors of the durable queues."""

from __future__ import annotations


class FifoError(Exception):
    """The FIFO could not store or read an entry (disk full, I/O error, locked by another process)."""
