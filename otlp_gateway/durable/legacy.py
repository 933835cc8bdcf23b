"""Spools written by gateways before the one durable FIFO, taken over on first start (nothing acknowledged
is lost across the upgrade).

* The export spool was already SQLite: table ``export_spool`` with a ``signal`` column. It becomes the
  ``fifo`` table by two renames in one transaction, in place: no copy, so an upgrade on a nearly full
  disk needs no extra room, and a crash leaves either the old table or the new one.
* The anomaly spool was a directory of JSON-lines segments (``seg-<seq>-<rows>.jsonl`` sealed,
  ``active-<seq>.jsonl`` being appended to). Each segment becomes one FIFO entry whose payload is its
  lines, then the file is deleted. A crash between the two imports that segment again on the next start:
  anomaly writes are idempotent on (stream, window), so the replay is a no-op in the store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from otlp_gateway.durable.errors import FifoError

if TYPE_CHECKING:
    from otlp_gateway.durable.fifo import DurableFifo

log = logging.getLogger(__name__)

_SEALED = re.compile(r"^seg-(\d{12})-(\d+)\.jsonl$")
_ACTIVE = re.compile(r"^active-(\d{12})\.jsonl$")


def upgrade_export_spool_table(conn: sqlite3.Connection) -> int:
    """Inside the caller's transaction: rename a previous version's ``export_spool`` table to ``fifo``;
    returns the rows carried over (0 when there was no such table)."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "export_spool" not in tables or "fifo" in tables:
        return 0
    conn.execute("ALTER TABLE export_spool RENAME TO fifo")
    conn.execute("ALTER TABLE fifo RENAME COLUMN signal TO tag")
    return int(conn.execute("SELECT count(*) FROM fifo").fetchone()[0])


def jsonl_segments(directory: Path) -> list[Path]:
    """A previous version's anomaly spool segments in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found: list[tuple[int, Path]] = []
    for path in directory.iterdir():
        if m := (_SEALED.match(path.name) or _ACTIVE.match(path.name)):
            found.append((int(m.group(1)), path))
    return [path for _, path in sorted(found)]


def read_jsonl_segment(path: Path) -> tuple[bytes, int, int]:
    """The segment's complete JSON lines (as one payload), how many, and how many lines were dropped.

    A line without its newline is the torn last append of a crash (never acknowledged) and is dropped;
    an undecodable complete line is damage: the whole file is kept aside as ``.undecodable``.
    """
    good: list[bytes] = []
    torn = damaged = 0
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                torn += 1
                continue
            try:
                json.loads(raw)
            except ValueError:
                damaged += 1
                continue
            good.append(raw)
    if damaged:
        kept = path.with_name(path.name + ".undecodable")
        shutil.copyfile(path, kept)
        log.error("previous anomaly spool: %d undecodable line(s) in %s; segment kept as %s", damaged,
                  path.name, kept.name)
    if torn:
        log.warning("previous anomaly spool: dropped %d torn line(s) at the end of %s", torn, path.name)
    return b"".join(good), len(good), torn + damaged


async def import_jsonl_segments(directory: Path, fifo: DurableFifo, tag: str) -> int:
    """Move every previous-format segment in ``directory`` into ``fifo`` (one entry each, oldest first);
    returns the lines imported. Leftover ``*.tmp`` files of an interrupted seal are removed."""
    segments = await asyncio.to_thread(jsonl_segments, directory)
    imported = 0
    for path in segments:
        payload, lines, _ = await asyncio.to_thread(read_jsonl_segment, path)
        if lines:
            try:
                await fifo.append(tag, payload, lines)  # committed before the file goes
            except FifoError as exc:  # disk full? keep the rest as they are for the next start
                log.error("%s: could not take over %s (%s); it stays for the next start", fifo.name,
                          path.name, exc)
                break
            imported += lines
        await asyncio.to_thread(path.unlink, missing_ok=True)
    for tmp in directory.glob("*.tmp") if directory.is_dir() else ():
        tmp.unlink(missing_ok=True)
    if segments:
        log.info("%s: took over %d rows from %d segment(s) of the previous spool format in %s", fifo.name,
                 imported, len(segments), directory)
    return imported
