"""The compiled masking scanner (``mask_texts``) against the regex (``mask_text``, the reference): the same
text for every input, on random strings of the token grammar and on the shared datasets' values."""

from __future__ import annotations

import csv
import gzip
import io
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors._kernels import mask as kernel
from detectors.canonical import (
    _mask,
    attribute_texts,
    canonical_log,
    canonical_span,
    log_heads,
    mask_text,
    mask_texts,
    span_heads,
    value_text,
    value_texts,
)
from detectors.canonical._mask import MAX_MASKED_CHARS
from detectors.canonical._values import attributes_text
from detectors.evaluate._paths import datasets

# ---------------------------------------------------------------- the token grammar

_HEX = "0123456789abcdefABCDEF"


def _digits(draw_int, n: int) -> str:
    return "".join(str(draw_int(0, 9)) for _ in range(n))


@st.composite
def _timestamp(draw) -> str:
    d = lambda n: _digits(lambda a, b: draw(st.integers(a, b)), n)  # noqa: E731
    if draw(st.booleans()):  # hh:mm:ss[.frac]
        text = f"{d(2)}:{d(2)}:{d(2)}"
        if draw(st.booleans()):
            text += draw(st.sampled_from(".,")) + d(draw(st.integers(0, 4)))
        return text
    text = f"{d(4)}-{d(2)}-{d(2)}"
    if draw(st.booleans()):
        text += draw(st.sampled_from("Tt ")) + f"{d(2)}:{d(2)}"
        if draw(st.booleans()):
            text += f":{d(2)}"
            if draw(st.booleans()):
                text += draw(st.sampled_from(".,")) + d(draw(st.integers(0, 4)))
        zone = draw(st.sampled_from(["", "Z", "z", "+hh:mm", "-hhmm", "+hh:m", "+h", "-hh:mmm"]))
        text += zone.replace("h", "0").replace("m", "5")
    return text


@st.composite
def _ip(draw) -> str:
    if draw(st.booleans()):
        return ".".join(str(draw(st.integers(0, 1999))) for _ in range(draw(st.integers(2, 5))))
    groups = [draw(st.text(alphabet=_HEX, min_size=0, max_size=5)) for _ in range(draw(st.integers(1, 9)))]
    return ":".join(groups)


_EMAIL = st.builds(lambda a, b, c: f"{a}@{b}{c}",
                   st.text(alphabet="abcXYZ019._%+-", min_size=0, max_size=6),
                   st.text(alphabet="abc09-", min_size=0, max_size=5),
                   st.lists(st.text(alphabet="abc09-", min_size=0, max_size=4).map(".".__add__),
                            max_size=3).map("".join))
_UUID = st.builds(lambda parts: "-".join(parts),
                  st.tuples(*(st.text(alphabet=_HEX, min_size=n - 1, max_size=n + 1)
                              for n in (8, 4, 4, 4, 12))))
_HEXWORD = st.one_of(st.builds("0{}{}".format, st.sampled_from("xX"),
                               st.text(alphabet=_HEX + "g", max_size=10)),
                     st.text(alphabet=_HEX, min_size=6, max_size=14),
                     st.text(alphabet="abcdef", min_size=7, max_size=10),
                     st.text(alphabet="0123456789", min_size=7, max_size=10))
_NUMBER = st.builds(lambda z, a, f: z + a + f,
                    st.sampled_from(["", "0", "00", "000"]),
                    st.one_of(st.text(alphabet="0123456789", min_size=1, max_size=6),
                              st.text(alphabet="0123456789", min_size=19, max_size=30)),
                    st.sampled_from(["", ".", ".5", ".05", ",5", ".5.5", "e10"]))
_GLUE = st.sampled_from([" ", " ", "", "_", "-", ".", ":", "/", "=", "@", "x", "Z", "T", "g", "é", "٣", "Ä",
                         "\u00a0", "\n", "a_", "_1", "ſ", "K"])
_TOKEN = st.one_of(_timestamp(), _ip(), _EMAIL, _UUID, _HEXWORD, _NUMBER, _GLUE,
                   st.text(alphabet="0123456789abcdefxyzABCDEFXTZ.:,-_@+% /", max_size=12))
_TEXT = st.lists(_TOKEN, max_size=10).map("".join)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_TEXT, min_size=1, max_size=8))
def test_the_kernel_masks_as_the_regex_on_the_token_grammar(texts: list[str]) -> None:
    assert mask_texts(texts) == [mask_text(t) for t in texts]


@settings(max_examples=200, deadline=None)
@given(_TEXT, st.integers(-40, 40))
def test_the_cut_at_every_offset_of_a_token(text: str, shift: int) -> None:
    """A token across the 4096th character is cut there, as by the regex (which masks the cut text)."""
    pad = "w " * ((MAX_MASKED_CHARS + shift) // 2)
    long = pad[:MAX_MASKED_CHARS - len(text) // 2 + shift] + text + " 1 2 3"
    assert mask_texts([long, text]) == [mask_text(long), mask_text(text)]


# ---------------------------------------------------------------- a seeded generator, many at once

def _seeded_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pieces = ["a@b.com", "x.y+z@d-1.ex.org", "@", "a@b.", "2024-05-01", "2024-05-01T10:00",
              "2024-05-01 10:00:00", "2024-05-01t10:00:00.123Z", "2024-05-01T10:00:00,5+05:30",
              "2024-05-01T10:00:00-0530", "10:00:00", "10:00:00.123", "12:34:56.7a",
              "3f2a9c1e-0b7d-4c1a-9e2f-1234567890ab", "3F2A9C1E-0B7D-4C1A-9E2F-1234567890AB", "10.0.0.7",
              "1.2.3.4567", "fe80::1", "2001:db8:0:0:1:0:0:1", "a:b:c:zz", "1:2:3:4:5:6:7:8:9", "0x1F", "0X",
              "deadbeef01", "deadbeef", "12345678", "DEADBEEF1",
              "007", "0.5", "00.00", "1.", "1.2.3", "9" * 30, "_", "user_42", "v1.2.3.4", "abc123", "-5"]
    chars = "0123456789abcdefxyzABCDEFXZT.:-_@+%, /"
    texts = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, 8)):
            r = rng.random()
            if r < 0.6:
                parts.append(rng.choice(pieces))
            elif r < 0.9:
                parts.append("".join(rng.choice(chars) for _ in range(rng.randint(1, 6))))
            else:
                parts.append(rng.choice(" _.-:@"))
        texts.append("".join(parts))
    return texts


def test_the_kernel_masks_as_the_regex_on_seeded_texts() -> None:
    texts = _seeded_texts(40_000, seed=14)
    texts += ["a" * 5000, "1 " * 3000, "a@b.c" * 1000, "deadbeef01 " * 500, "x" * MAX_MASKED_CHARS, ""]
    assert mask_texts(texts) == [mask_text(t) for t in texts]


# ---------------------------------------------------------------- the datasets' values

def _dataset_values(limit_per_file: int = 4000) -> list[str]:
    root = datasets()
    files = [*sorted((root / "logs").rglob("*")), *sorted((root / "traces").rglob("*.csv.gz"))[:3],
             *sorted((root / "nab" / "data").rglob("*.csv"))[:6]]
    values: list[str] = []
    for path in files:
        if not path.is_file() or path.suffix in (".md", ".bib") or path.name.startswith("LICENSE"):
            continue
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read(2_000_000)
        else:
            raw = path.read_bytes()[:2_000_000]
        lines = raw.decode("utf-8", "replace").splitlines()[:limit_per_file]
        values.extend(lines)  # whole lines, as log bodies
        if path.name.endswith((".csv", ".csv.gz")):
            for row in csv.reader(io.StringIO("\n".join(lines))):
                values.extend(row)  # every cell, as attribute values
        else:
            for line in lines:
                values.extend(line.split())
    return values


def test_the_kernel_masks_as_the_regex_on_the_datasets() -> None:
    if not (datasets() / "logs").is_dir():
        pytest.skip("the shared datasets are not here (set DRIFTLOCK_SHARED)")
    values = _dataset_values()
    assert len(values) > 50_000
    assert mask_texts(values) == [mask_text(v) for v in values]


# ---------------------------------------------------------------- the wrapper

def test_non_ascii_texts_go_to_the_regex_and_keep_their_place() -> None:
    texts = ["id ٣4 x", "plain 42", "café 2024-05-01", "", "x\u00e9 10.0.0.1", "Kelvin K deadbeef1"]
    assert mask_texts(texts) == [mask_text(t) for t in texts]
    assert mask_texts(texts)[0] == "id <N2> x"  # Arabic-Indic three is a \d for the regex
    assert mask_texts([]) == []
    assert mask_texts(["", ""]) == ["", ""]


def test_the_kernel_and_the_regex_agree_on_the_limits() -> None:
    assert kernel.MAX_MASKED_CHARS == _mask.MAX_MASKED_CHARS
    assert kernel.MAX_DIGITS == _mask.MAX_DIGITS
    lens = np.array([0, 1, MAX_MASKED_CHARS + 10], dtype=np.int64)
    assert kernel.out_size(lens) >= 4 * (1 + MAX_MASKED_CHARS) + 5


@pytest.mark.timeout(60)
@pytest.mark.parametrize("unit", ["A", "a", "1", "a@", "-", ".", "a.", "x@y.", "1.", "f0", "a:", "Z_", "1.1.",
                                  "2024-01-01T", "12:00:00."])
def test_masking_a_long_run_is_linear(unit: str) -> None:
    text = unit * (2_000_000 // len(unit))
    cut = text[:MAX_MASKED_CHARS]
    assert mask_texts([text, cut]) == [mask_text(text), mask_text(cut)]
    many = [unit * 300] * 2000  # 600 k characters of the worst case for a word start, in one call
    assert mask_texts(many) == [mask_text(many[0])] * 2000


def test_a_value_of_megabytes_costs_its_cut() -> None:
    """Only the first MAX_MASKED_CHARS characters are scanned (and the output is sized by them)."""
    assert mask_texts(["9" * 20_000_000]) == ["<N20><CUT>"]


# ---------------------------------------------------------------- the batch forms of the canonical functions

_KEY = st.sampled_from(["http.method", "user_id", "requestId", "db.system", "valid", "session", "a",
                        "route", "http.request.id", "userID", "count", "caf\u00e9"])
_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-10**25, 10**25), st.floats(), _TEXT,
                  st.binary(max_size=4))
_VALUE = st.recursive(_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=10),
                                                     st.dictionaries(_KEY, inner, max_size=10)),
                      max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_KEY, _VALUE), max_size=8))
def test_value_and_attribute_texts_in_one_call_as_one_by_one(pairs: list[tuple[str, object]]) -> None:
    values = [v for _, v in pairs]
    assert value_texts(values) == [value_text(v) for v in values]
    assert attribute_texts(pairs) == [attributes_text({k: v})[2:] for k, v in pairs]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_TEXT, st.integers(0, 30), st.integers(0, 7), st.integers(0, 3),
                          st.integers(-10, 2**64)), max_size=6))
def test_heads_in_one_call_as_one_by_one(rows: list[tuple[str, int, int, int, int]]) -> None:
    texts, severities, kinds, statuses, durations = (list(c) for c in zip(*rows, strict=True)) if rows else \
        ([], [], [], [], [])
    assert log_heads(texts, severities) == [canonical_log(t, s, None)
                                            for t, s in zip(texts, severities, strict=True)]
    assert span_heads(texts, kinds, statuses, durations) == [
        canonical_span(*row, None) for row in zip(texts, kinds, statuses, durations, strict=True)]


def test_the_warm_up_compiles_the_kernel() -> None:
    _mask.warm_up()
    assert kernel.mask_batch.signatures
