"""A bounded on-disk FIFO of anomaly rows waiting for the store (blocking I/O: call it from one thread).

Layout of the spool directory:

* ``active-<seq>.jsonl``: the segment being appended to, one JSON record per line, fsynced per append;
* ``seg-<seq>-<rows>.jsonl``: sealed segments, oldest first by ``seq``; the row count is in the name so
  opening a spool of a million rows reads no data;
* ``rejected.jsonl``: rows the database refused permanently (dead letters, kept for an operator).

A crash can at worst leave a truncated last line in the active segment, which is dropped on open (it was
never acknowledged as spooled). A segment is deleted only after the store confirmed its rows, so a crash
in between replays it: the store's idempotent key turns the replay into a no-op.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from otlp_gateway.store import codec
from otlp_gateway.store.base import AnomalyRecord

log = logging.getLogger(__name__)

_SEALED = re.compile(r"^seg-(\d{12})-(\d+)\.jsonl$")
_ACTIVE = re.compile(r"^active-(\d{12})\.jsonl$")
REJECTED_FILE = "rejected.jsonl"


@dataclass(frozen=True, slots=True)
class Segment:
    seq: int
    rows: int
    path: Path


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_lines(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Decoded records and the number of undecodable lines (a torn last write, or damage)."""
    records: list[dict[str, Any]] = []
    bad = 0
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                bad += 1  # torn final append: never acknowledged
                continue
            try:
                records.append(json.loads(raw))
            except ValueError:
                bad += 1
    return records, bad


class AnomalySpool:
    def __init__(self, directory: Path, max_rows: int, segment_rows: int):
        self.directory = directory
        self.max_rows = max_rows
        self.segment_rows = max(1, segment_rows)
        self._sealed: list[Segment] = []
        self._active: IO[bytes] | None = None
        self._active_seq = 0
        self._active_rows = 0
        self._next_seq = 1
        self.rows = 0
        """Rows held (sealed plus active)."""

    def open(self) -> None:
        """Scan the directory: recover an active segment left by a crash and count what is held."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for tmp in self.directory.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        for path in sorted(self.directory.iterdir()):
            if m := _SEALED.match(path.name):
                self._sealed.append(Segment(int(m.group(1)), int(m.group(2)), path))
            elif m := _ACTIVE.match(path.name):
                self._recover_active(int(m.group(1)), path)
        self._sealed.sort(key=lambda s: s.seq)
        self._next_seq = max((s.seq for s in self._sealed), default=0) + 1
        self.rows = sum(s.rows for s in self._sealed)
        if self.rows:
            log.info("anomaly spool %s holds %d rows in %d segments", self.directory, self.rows,
                     len(self._sealed))

    def _recover_active(self, seq: int, path: Path) -> None:
        records, bad = _read_lines(path)
        if bad:
            log.warning("anomaly spool: dropped %d torn line(s) at the end of %s", bad, path.name)
        if records:
            self._sealed.append(self._write_sealed(seq, records))
        path.unlink()

    def _write_sealed(self, seq: int, records: list[dict[str, Any]]) -> Segment:
        final = self.directory / f"seg-{seq:012d}-{len(records)}.jsonl"
        tmp = final.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            for rec in records:
                fh.write(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(final)
        _fsync_dir(self.directory)
        return Segment(seq, len(records), final)

    def append(self, records: list[AnomalyRecord]) -> int:
        """Durably append as many rows as the bound allows; returns how many were taken (the rest refused)."""
        room = max(self.max_rows - self.rows, 0)
        taken = records[:room]
        while taken:
            if self._active is None:
                self._open_active()
            chunk = taken[: self.segment_rows - self._active_rows]
            taken = taken[len(chunk):]
            assert self._active is not None
            self._active.write(b"".join(
                json.dumps(codec.record_to_plain(r), separators=(",", ":"), default=str).encode() + b"\n"
                for r in chunk))
            self._active.flush()
            os.fsync(self._active.fileno())
            self._active_rows += len(chunk)
            self.rows += len(chunk)
            if self._active_rows >= self.segment_rows:
                self._seal_active()
        return min(room, len(records))

    def _open_active(self) -> None:
        self._active_seq = self._next_seq
        self._next_seq += 1
        self._active = (self.directory / f"active-{self._active_seq:012d}.jsonl").open("ab")
        self._active_rows = 0
        _fsync_dir(self.directory)

    def _seal_active(self) -> None:
        if self._active is None:
            return
        self._active.close()
        self._active = None
        active = self.directory / f"active-{self._active_seq:012d}.jsonl"
        if self._active_rows == 0:
            active.unlink(missing_ok=True)
            return
        final = self.directory / f"seg-{self._active_seq:012d}-{self._active_rows}.jsonl"
        active.replace(final)
        _fsync_dir(self.directory)
        self._sealed.append(Segment(self._active_seq, self._active_rows, final))
        self._active_rows = 0

    def oldest(self) -> tuple[Segment, list[AnomalyRecord]] | None:
        """The oldest segment and its rows (sealing the active one if it is all there is)."""
        if not self._sealed:
            self._seal_active()
        if not self._sealed:
            return None
        segment = self._sealed[0]
        plain, bad = _read_lines(segment.path)
        records: list[AnomalyRecord] = []
        for item in plain:
            try:
                records.append(codec.record_from_plain(item))
            except (KeyError, TypeError, ValueError) as exc:
                bad += 1
                log.error("anomaly spool: undecodable record in %s: %s", segment.path.name, exc)
        if bad:
            # Keep the whole segment for an operator before it is removed with its good rows.
            kept = segment.path.with_name(segment.path.name + ".undecodable")
            shutil.copyfile(segment.path, kept)
            log.error("anomaly spool: %d undecodable line(s) in %s; segment kept as %s", bad,
                      segment.path.name, kept.name)
        return segment, records

    def remove(self, segment: Segment) -> None:
        """Forget a segment whose rows the store confirmed."""
        segment.path.unlink(missing_ok=True)
        self._sealed = [s for s in self._sealed if s.seq != segment.seq]
        self.rows -= segment.rows

    def reject(self, records: list[AnomalyRecord], reason: str) -> None:
        """Keep rows the database refused permanently, with the reason, for an operator to inspect."""
        with (self.directory / REJECTED_FILE).open("ab") as fh:
            for rec in records:
                line = {"reason": reason, "record": codec.record_to_plain(rec)}
                fh.write(json.dumps(line, separators=(",", ":"), default=str).encode() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())

    def close(self) -> None:
        self._seal_active()
