"""Process logging on stderr: plain text or one JSON object per line (``log_format``).

JSON lines carry ``ts`` (UTC, ISO 8601, milliseconds), ``level``, ``logger``, ``msg``, every ``extra=``
field of the record and, for exceptions, ``exc_info`` (the formatted traceback): what log shippers
(Fluent Bit, Vector, the collector's filelog receiver with a json_parser) read without a regex.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import IO, Literal

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Libraries that log one INFO line per request they make. httpx does ("HTTP Request: POST ... 200"): with
# HTTP forwarding that was one line per exported batch, drowning everything else at the default level.
PER_REQUEST_LOGGERS = ("httpx",)


class JsonLineFormatter(JsonFormatter):
    """python-json-logger with this project's key names and an ISO 8601 UTC timestamp first."""

    def __init__(self) -> None:
        super().__init__("{asctime}{levelname}{name}{message}", style="{",
                         rename_fields={"asctime": "ts", "levelname": "level", "name": "logger",
                                        "message": "msg"})

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")


class PerRequestAtDebug(logging.Filter):
    """Demote a library's INFO records to DEBUG; they pass only when the process logs at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return record.levelno >= logging.getLogger().getEffectiveLevel()


def setup_logging(level: str, log_format: LogFormat = "text", stream: IO[str] | None = None) -> None:
    """Configure the root logger once for the process (replacing earlier handlers)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonLineFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    for name in PER_REQUEST_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, PerRequestAtDebug) for f in logger.filters):
            logger.addFilter(PerRequestAtDebug())
