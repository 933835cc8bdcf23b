"""The field codes' kernel reads every event as the reference reader does (differential tests)."""

from __future__ import annotations

import random

import pytest

from detectors import field_codes
from detectors._kernels import field_codes as kernel
from detectors.canonical import parse
from detectors.evaluate._paths import datasets
from detectors.evaluate.logs import bgl_lines
from detectors.field_codes import codes_of, read_codes, read_many
from detectors.synthetic import synthetic_logs, synthetic_spans

_KINDS = ["SERVER", "CLIENT", "INTERNAL", "PRODUCER", "CONSUMER", "UNSPECIFIED", "KIND7", "KIND-3", "KIND",
          "KINDX", "SERVERX"]
_SEVERITIES = ["INFO", "INFO2", "INFO5", "WARN3", "ERROR", "ERROR4", "FATAL", "TRACE", "DEBUG2", "SEV9",
               "SEV-12", "SEV", "UNSPECIFIED", "UNSPECIFIEDX", "ERRORS", ""]
_STATUSES = ["OK", "ERROR", "UNSET", "STATUS5", "STATUS-2", "STATUS", "OKAY"]
_PIECES = [" ", "  ", " | ", "|", "=", " d=D", "d=D7", " OK d=D5", " ERROR d=D12 | ", "7", "1234", "<N3>",
           "<ID>", "<>", "<a1>", "<IP>x", "<F2", "GET /cart", "took x=1 ms", "k=v", " | a=", " | =b",
           " | |c=", " | d=e"]
_VALUES = ["v", "card-processor-a", "503", "<ID>", "/product/<N5>", "a b", "took x=1 ms", "x | y=z", "", "<>",
           "<A1>z", "|", "a=b"]


def _text(rng: random.Random, most: int) -> str:
    return "".join(rng.choice(_PIECES) if rng.random() < 0.6 else
                   "".join(rng.choice("ab=| <>N0123XYZ") for _ in range(rng.randint(1, 5)))
                   for _ in range(rng.randint(0, most)))


def _attributes(rng: random.Random) -> str:
    keys = [f"{rng.choice('abcxyz')}{rng.choice(['', '.k', '_1', '|'])}{rng.randint(0, 9)}"
            for _ in range(rng.randint(0, 9))]
    if rng.random() < 0.7:
        keys.sort()  # as the canonical form writes them; otherwise the longest sorted chain decides
    return " ".join(f"{k}={rng.choice(_VALUES)}" for k in keys)


def _fuzzed_events(n: int, seed: int) -> list[bytes]:
    """Near-canonical events: spans and logs whose names, bodies and attribute values hold decoys of the
    grammar (statuses, buckets, bars, ``key=`` runs, placeholders), and noise."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tail = rng.choice(["", " | " + _attributes(rng), " | " + _attributes(rng), " |", " | =x",
                           _text(rng, 3)])
        r = rng.random()
        if r < 0.45:
            digits = rng.choice(["0", "7", "15", "127", "999", "1234", ""])
            event = f"{rng.choice(_KINDS)} {_text(rng, 4)} {rng.choice(_STATUSES)} d=D{digits}{tail}"
        elif r < 0.9:
            event = f"{rng.choice(_SEVERITIES)} {_text(rng, 6)}{tail}"
        else:
            event = _text(rng, 12)
        out.append(event.encode())
    return out


def _assert_same(events: list[bytes]) -> None:
    assert read_many(events) == [read_codes(e) for e in events]


def test_the_kernel_reads_as_the_reference_on_fuzzed_events() -> None:
    events = _fuzzed_events(30_000, seed=3)
    codes = [read_codes(e) for e in events]
    assert len(set(codes)) > 5_000  # varied: every status and severity, neither, with and without field c
    assert {a for a, _, _ in codes} == set(range(13))
    assert sum(any(c) for _, _, c in codes) > 4_000
    _assert_same(events)


def test_the_kernel_reads_as_the_reference_on_synthetic_spans_and_logs() -> None:
    events = synthetic_spans(3_000, seed=5, anomalies=[100, 2_000]) + synthetic_logs(3_000, seed=6)
    _assert_same(events)


def test_the_kernel_reads_as_the_reference_on_bgl() -> None:
    if not (datasets() / "logs").is_dir():
        pytest.skip("the shared datasets are not here (set DRIFTLOCK_SHARED)")
    _assert_same([event for _, event in bgl_lines()])


def test_many_keys_out_of_order_and_past_the_chain_limit() -> None:
    head = b"SERVER GET /x OK d=D12 | "
    shuffled = [f"k{i:03d}=v{i}".encode() for i in random.Random(1).sample(range(200), 200)]
    limit = kernel.CHAIN_LIMIT
    events = [head + b" ".join(shuffled[:n]) for n in (2, 10, limit, limit + 1, 200)]
    events += [head + b" ".join(sorted(shuffled)[:n]) for n in (limit + 1, 200)]
    _assert_same(events)
    assert kernel.CHAIN_LIMIT == parse._CHAIN_LIMIT


def test_events_the_kernel_leaves_go_to_the_reference_and_keep_their_place() -> None:
    events = [b"INFO caf\xc3\xa9 ok | k=v", b"SERVER a OK d=D3\n", b"INFO x\tY | k=v", b"WARN fine | k=v",
              b"SERVER " + b"x" * kernel.MAX_READ + b" OK d=D3", b"SERVER a OK d=D3 | k=\xff"]
    _assert_same(events)
    assert read_codes(events[1])[:2] == (2, 4)  # "$" matches before a final newline


def test_the_memo_returns_what_the_reader_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(field_codes, "_CACHE", {})
    monkeypatch.setattr(field_codes, "_CACHE_SIZE", 16)
    events = _fuzzed_events(200, seed=9)
    events = events + events[::-1]  # repeats within a batch and across batches
    expected = [read_codes(e) for e in events]
    assert codes_of(events[:150]) + codes_of(events[150:]) == expected
    assert len(field_codes._CACHE) <= 16 + 150
