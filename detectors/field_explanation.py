"""Field-level explanation of an incident: which fields of its events changed against the frozen reference.

``explain_fields(reference, incident)`` reads both sides' canonical span/log events back into fields
(:mod:`detectors.canonical.parse`), compares them field by field and returns ranked ``FieldChange`` rows and a
one-sentence summary without engine tokens. ``explain_band`` does the same for a numeric (metric) window from
the numeric detector's explanation dict.

Fields: a span's ``status``, ``duration`` (log2 bucket, or exact durations when given), ``span.name``,
``span.kind``; a log's ``severity`` (band: INFO2 counts as INFO) and ``log.template`` (the masked body);
every attribute key (a missing key is the value "not set").

Row kinds: ``new_key`` (a key absent from every reference event), ``new_value`` (values never seen in the
reference, grouped per field), ``rare_value`` (seen in under 1 % of the reference), ``share`` (a known value,
or any status/severity value, whose share rose by >= 5 points and x 2), ``shift`` (duration median, or
90th percentile when the median holds, moved by x 1.5 or more), ``new_template``.

Bits (the ranking, documented in docs/detectors.md): for a value (or group of new values) seen ``k`` times
in the ``n`` incident events, ``bits = n * D(k/n || p)`` where ``D`` is the binary Kullback-Leibler divergence
in bits and ``p`` the value's smoothed reference share ``(c + 1/2) / (N + 1)`` (``c`` of ``N`` reference
events; for never-seen values ``c`` is the number of reference values seen exactly once: the Good-Turing
chance of a new value, so a field that is always new, like a request path with ids, costs nothing). By the
Chernoff bound the reference produces such a count with probability at most ``2^-bits``. For the duration,
``n * KL`` over the log2 buckets with the same smoothing, less its expected value when nothing changed
(the chi-square approximation ``(B - 1) / (2 ln 2) * (1 + n/N)`` for ``B`` buckets); medians and
percentiles are exact when the caller passes exact durations for every span of both sides, else
interpolated inside their log2 bucket (:mod:`detectors.field_durations`) and shown with "~". Rows under
``MIN_BITS`` are dropped; at most ``PER_FIELD_ROWS`` per field and ``MAX_FIELDS`` in all are kept,
costliest first.

Bounded work: only the last ``REFERENCE_CAP`` reference and the last ``INCIDENT_CAP`` incident events are
examined, and of their attribute keys the ``MAX_KEYS`` most frequent (events that parse as neither span nor
log are skipped), so a call costs at most ~2,500 events x 69 fields of counting.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.canonical.parse import ParsedEvent, parse_event
from detectors.field_durations import Durations
from detectors.incident_types import FieldChange
from detectors.plain_words import (
    duration,
    elide,
    engine_tokens,
    p_bound,
    percent,
    plain,
    ratio,
    unmask,
)

REFERENCE_CAP = 2_000
"""Reference events examined (the most recent)."""
INCIDENT_CAP = 500
"""Incident events examined (the most recent)."""
MAX_FIELDS = 8
PER_FIELD_ROWS = 2
MIN_BITS = 10.0
"""A row must cost at least this much (chance under the reference <= 2^-10 by the Chernoff bound)."""
RARE_SHARE = 0.01
"""A value seen in fewer than this share of the reference events is rare."""
MIN_SHARE_RISE = 0.05
SHARE_FACTOR = 2.0
"""A known value's share must rise by ``MIN_SHARE_RISE`` points and this factor (events are not
independent: spans of one trace, retries, so a sampling test alone over-reports)."""
SHIFT_FACTOR = 1.5
SUMMARY_CLAUSES = 4
MAX_KEYS = 64
"""Attribute keys compared (the most frequent over both sides): bounds the work on key-per-event streams."""
_TEXT_CAP = 300  # characters of a template/example kept in a row
_SUMMARY_TEMPLATE_CAP = 80
_NOT_SET = None
_HEAD_FIELDS = ("status", "severity", "log.template", "span.name", "span.kind")
_SHARE_ONLY = ("status", "severity")  # a small fixed vocabulary: a "new" value there is a share change
_MASKED_VALUES = ("<ID>", "<LONG>")  # values the canonical form already hid: never compared
_PREDICTORS = {"range": "the recent range", "step": "the previous value",
               "daily": "the same time a day earlier", "weekly": "the same time a week earlier",
               "mean": "the recent mean"}

Field = tuple[bool, str]  # (is an attribute, name): an attribute named "status" is not the span status


@dataclass(frozen=True, slots=True)
class _Row:
    change: FieldChange
    phrase: str  # its clause in the summary
    attribute: bool


@dataclass(slots=True)
class _Side:
    parsed: list[ParsedEvent]
    lines: list[bytes]
    durations: Durations  # of the parsed spans, in order

    @property
    def n(self) -> int:
        return len(self.parsed)

    def values(self, field: Field) -> list[str | None]:
        is_attr, name = field
        if is_attr:
            return [event.attributes.get(name) for event in self.parsed]
        return [event.head.get(name) for event in self.parsed]


def _side(events: Sequence[bytes], durations_ns: Sequence[float] | np.ndarray | None, cap: int) -> _Side:
    exact_ns = None if durations_ns is None else np.asarray(durations_ns, dtype=np.float64)
    if exact_ns is not None and len(exact_ns) != len(events):
        raise ValueError(f"durations_ns must have one entry per event ({len(exact_ns)} durations, "
                         f"{len(events)} events)")
    start = max(len(events) - cap, 0)
    parsed, lines, buckets, exact = [], [], [], []
    for k in range(start, len(events)):
        line = bytes(events[k])
        event = parse_event(line)
        if event is None:
            continue
        parsed.append(event)
        lines.append(line)
        if event.duration_bucket is not None:
            buckets.append(event.duration_bucket)
            exact.append(math.nan if exact_ns is None else float(exact_ns[k]))
    exact_array = np.asarray(exact, dtype=np.float64)
    known = exact_ns is not None and bool(np.all(np.isfinite(exact_array)))  # all or nothing: no mixing
    durations = Durations(np.asarray(buckets, dtype=np.int64), exact_array if known else None)
    return _Side(parsed, lines, durations)


def _divergence_bits(q: float, p: float) -> float:
    """Binary Kullback-Leibler divergence D(q || p) in bits (p strictly inside (0, 1))."""
    bits = 0.0
    if q > 0.0:
        bits += q * math.log2(q / p)
    if q < 1.0:
        bits += (1.0 - q) * math.log2((1.0 - q) / (1.0 - p))
    return max(bits, 0.0)


def _smoothed(count: int, total: int) -> float:
    return (count + 0.5) / (total + 1.0)


def _label(value: str | None) -> str:
    return "not set" if value is None else plain(value[:_TEXT_CAP])


def _mix(counts: Counter[str | None], total: int, lead: Sequence[str | None] = (), others: int = 2) -> str:
    """``503 (31 %), 200 (69 %)``: the lead values first, then the most frequent others."""
    rest = sorted((v for v in counts if v not in lead), key=lambda v: (-counts[v], str(v)))[:others]
    shown = [*lead, *rest]
    if not shown:
        return "none"
    return ", ".join(f"{_label(v)} ({percent(counts[v] / total if total else 0.0)})" for v in shown)


def _example(side: _Side, field: Field, wanted: set[str | None]) -> str | None:
    for event, line in zip(side.parsed, side.lines, strict=True):
        value = event.attributes.get(field[1]) if field[0] else event.head.get(field[1])
        if value in wanted:
            return line.decode("utf-8", "replace")[:_TEXT_CAP]
    return None


def _categorical_rows(field: Field, ref: _Side, inc: _Side) -> list[_Row]:
    is_attr, name = field
    ref_counts = Counter(ref.values(field))
    inc_counts = Counter(inc.values(field))
    if is_attr and set(ref_counts) == {_NOT_SET}:
        return _new_key_row(field, inc_counts, ref, inc)
    rows: list[_Row] = []
    new: list[str | None] = [v for v in inc_counts
                             if v is not _NOT_SET and v not in ref_counts and v not in _MASKED_VALUES]
    if new and name not in _SHARE_ONLY:
        rows += _new_value_rows(field, new, ref_counts, inc_counts, ref, inc)
    for value in sorted(inc_counts, key=str):
        if value in _MASKED_VALUES or (value in new and name not in _SHARE_ONLY):
            continue
        row = _known_value_row(field, value, ref_counts, inc_counts, ref, inc)
        if row is not None:
            rows.append(row)
    return sorted(rows, key=lambda r: -r.change.bits)[:PER_FIELD_ROWS]


def _new_key_row(field: Field, inc_counts: Counter[str | None], ref: _Side, inc: _Side) -> list[_Row]:
    key = field[1]
    present = inc.n - inc_counts[_NOT_SET]
    if present == 0:  # a key only some reference events had, and none of these: nothing new
        return []
    bits = inc.n * _divergence_bits(present / inc.n, _smoothed(0, ref.n))
    if bits < MIN_BITS:
        return []
    values: Counter[str | None] = Counter({v: c for v, c in inc_counts.items() if v is not _NOT_SET})
    top = max(values, key=lambda v: (values[v], str(v)))
    if values[top] * 2 >= present and top not in _MASKED_VALUES:  # one value dominates: name it
        phrase = f"{plain(key)}={_label(top)} (new)"
    else:
        phrase = f"new attribute {plain(key)} ({percent(present / inc.n)} of events)"
    change = FieldChange(field=key, change="new_key", before="never seen", now=_mix(values, inc.n),
                         unusual=f"never seen in {ref.n} reference events", bits=round(bits, 2),
                         example=_example(inc, field, set(values)))
    return [_Row(change, phrase, True)]


def _new_value_rows(field: Field, new: list[str | None], ref_counts: Counter[str | None],
                    inc_counts: Counter[str | None], ref: _Side, inc: _Side) -> list[_Row]:
    is_attr, name = field
    seen_once = sum(1 for v, c in ref_counts.items() if c == 1 and v is not _NOT_SET)
    new.sort(key=lambda v: (-inc_counts[v], str(v)))
    k = sum(inc_counts[v] for v in new)
    p = _smoothed(seen_once, ref.n)
    q = k / inc.n
    if q <= p:
        return []
    if name == "log.template":  # each new message on its own row: the template is the news
        return [row for v in new[:PER_FIELD_ROWS] if (row := _new_template_row(v, seen_once, inc_counts, ref,
                                                                                 inc)) is not None]
    bits = inc.n * _divergence_bits(q, p)
    if bits < MIN_BITS:
        return []
    if len(new) == 1:
        now = _mix(inc_counts, inc.n, lead=new, others=0)
        phrase = f"{plain(name)}={_label(new[0])} (new)"
    else:
        now = (f"{_mix(inc_counts, inc.n, lead=new[:2], others=0)}"
               + (f" and {len(new) - 2} more" if len(new) > 2 else "") + f" ({percent(q)} of events)")
        phrase = f"{plain(name)}: {len(new)} new values in {percent(q)} of events (e.g. {_label(new[0])})"
    before = _mix(ref_counts, ref.n, others=2)
    change = FieldChange(field=name, change="new_value", before=before, now=now,
                         unusual=f"never seen in {ref.n} reference events", bits=round(bits, 2),
                         example=_example(inc, field, set(new)))
    return [_Row(change, phrase, is_attr)]


def _template(value: str | None) -> str:
    text = value or ""
    return text if len(text) <= _TEXT_CAP else text[:_TEXT_CAP] + "…"


def _quoted_template(value: str | None) -> str:
    text = elide(value or "").replace('"', "'")
    return '"' + (text if len(text) <= _SUMMARY_TEMPLATE_CAP else text[:_SUMMARY_TEMPLATE_CAP] + "…") + '"'


def _new_template_row(value: str | None, seen_once: int, inc_counts: Counter[str | None], ref: _Side,
                      inc: _Side) -> _Row | None:
    k = inc_counts[value]
    bits = inc.n * _divergence_bits(k / inc.n, _smoothed(seen_once, ref.n))
    if bits < MIN_BITS:
        return None
    change = FieldChange(field="log.template", change="new_template", before="never seen",
                         now=f'"{_template(value)}" ({percent(k / inc.n)} of logs)',
                         unusual=f"never seen in {ref.n} reference events", bits=round(bits, 2),
                         example=_example(inc, (False, "log.template"), {value}))
    phrase = f"new log message {_quoted_template(value)} ({percent(k / inc.n)} of logs)"
    return _Row(change, phrase, False)


def _known_value_row(field: Field, value: str | None, ref_counts: Counter[str | None],
                     inc_counts: Counter[str | None], ref: _Side, inc: _Side) -> _Row | None:
    is_attr, name = field
    c, k = ref_counts[value], inc_counts[value]
    before_share, q = c / ref.n, k / inc.n
    p = _smoothed(c, ref.n)
    if q <= p:
        return None
    bits = inc.n * _divergence_bits(q, p)
    if bits < MIN_BITS:
        return None
    rare = c > 0 and before_share < RARE_SHARE and name not in _SHARE_ONLY
    if c > 0 and not rare and (q - before_share < MIN_SHARE_RISE or q < SHARE_FACTOR * before_share):
        return None
    before, now = _mix(ref_counts, ref.n, lead=[value]), _mix(inc_counts, inc.n, lead=[value])
    template = name == "log.template"
    shown = _quoted_template(value) if template else _label(value)
    if rare:
        unusual = f"seen {c} time{'s' if c != 1 else ''} in {ref.n} reference events"
        what = f"rare log message {shown}" if template else f"{plain(name)}={shown}"
        phrase = f"{what} in {percent(q)} of events (was {percent(before_share)})"
    else:
        unusual = p_bound(bits)
        if name == "status":
            phrase = f"{percent(q)} of spans now {shown} (was {percent(before_share)})"
        elif name == "severity":
            phrase = f"{percent(q)} of logs now {shown} (was {percent(before_share)})"
        elif template:
            phrase = f"log message {shown} now {percent(q)} of logs (was {percent(before_share)})"
        else:
            phrase = f"{plain(name)}={shown} in {percent(q)} of events (was {percent(before_share)})"
    if template:
        before = f'"{_template(value)}" ({percent(before_share)})'
        now = f'"{_template(value)}" ({percent(q)})'
    change = FieldChange(field=name, change="rare_value" if rare else "share", before=before, now=now,
                         unusual=unusual, bits=round(bits, 2), example=_example(inc, field, {value}))
    return _Row(change, phrase, is_attr)


def _moved_statistic(ref: Durations, inc: Durations) -> tuple[str, float, float, float] | None:
    """The median if it moved by ``SHIFT_FACTOR``, else the 90th percentile if that did, else None."""
    for stat, q in (("median", 50.0), ("90th percentile", 90.0)):
        before, now = ref.percentile(q), inc.percentile(q)
        factor = now / max(before, 1.0)
        if factor >= SHIFT_FACTOR or factor <= 1.0 / SHIFT_FACTOR:
            return stat, before, now, factor
    return None


def _duration_row(ref_side: _Side, inc_side: _Side) -> list[_Row]:
    ref, inc = ref_side.durations, inc_side.durations
    if ref.size == 0 or inc.size == 0:
        return []
    if (ref.exact_ns is None) != (inc.exact_ns is None):  # compare like with like
        ref, inc = Durations(ref.buckets), Durations(inc.buckets)
    ref_buckets, inc_buckets = ref.bucket_counts(), inc.bucket_counts()
    N, n = ref.size, inc.size
    support = len(set(ref_buckets) | set(inc_buckets))
    divergence = sum(count * math.log2((count / n) / ((ref_buckets.get(b, 0) + 0.5) / (N + 0.5 * support)))
                     for b, count in inc_buckets.items())
    # what n * KL over `support` buckets comes to when nothing changed (chi-square: (support - 1) / 2 ln 2
    # for the incident's sampling, x (1 + n/N) for the reference's): a wide spread of buckets is not news
    bits = divergence - (support - 1) / (2.0 * math.log(2.0)) * (1.0 + n / N)
    if bits < MIN_BITS:
        return []
    moved = _moved_statistic(ref, inc)
    if moved is None:
        return []
    stat, before, now, factor = moved
    approx = "" if inc.exact_ns is not None else "~"
    slower = factor > 1.0
    edge = ref.percentile(99.0 if slower else 1.0)
    unusual = (f"{inc.beyond(edge, slower)} of {n} spans {'slower' if slower else 'faster'} than the "
               f"reference's {'99th' if slower else '1st'} percentile ({approx}{duration(edge)})")
    change = FieldChange(field="duration", change="shift", before=f"{approx}{duration(before)} {stat}",
                         now=f"{approx}{duration(now)} {stat} ({ratio(factor)})", unusual=unusual,
                         bits=round(bits, 2))
    phrase = f"duration {ratio(factor)} ({stat} {approx}{duration(before)} → {approx}{duration(now)})"
    return [_Row(change, phrase, False)]


def _fields(ref: _Side, inc: _Side) -> list[Field]:
    """The head fields present in the incident and the ``MAX_KEYS`` most frequent attribute keys."""
    keys: Counter[str] = Counter(key for side in (ref, inc) for e in side.parsed for key in e.attributes)
    attrs = sorted(sorted(keys), key=lambda key: -keys[key])[:MAX_KEYS]
    heads = [f for f in _HEAD_FIELDS if any(f in e.head for e in inc.parsed)]
    return [(False, f) for f in heads] + [(True, a) for a in sorted(attrs)]


def _prefix(service: str, name: str) -> str:
    words = " ".join(plain(part) for part in (service, name) if part)
    return f"{words}: " if words else ""


def _summary(prefix: str, rows: list[_Row]) -> str:
    """One sentence: the costliest rows' phrases; new attributes that came with an ERROR share join it."""
    if not rows:
        return f"{prefix}the events differ from the reference, but no single field explains the change"
    # a key gone missing usually comes with a new kind of event (a new log template lacks the old keys):
    # it stays in the table, but the sentence names what is there rather than what is not, if it can
    absent = [r for r in rows if r.change.now.startswith("not set (")]
    if len(absent) < len(rows):
        rows = [r for r in rows if r not in absent]
    phrases = {i: row.phrase for i, row in enumerate(rows)}
    status = next((i for i, r in enumerate(rows) if r.change.field == "status" and not r.attribute
                   and r.change.change == "share"), None)
    if status is not None:
        company = [i for i, r in enumerate(rows) if r.attribute
                   and r.change.change in ("new_key", "new_value", "rare_value")][:2]
        if company:
            joined = rows[status].phrase + " with " + " and ".join(rows[i].phrase for i in company)
            for i in company:
                del phrases[i]
            del phrases[status]
            phrases[min(status, *company)] = joined
    return prefix + "; ".join(phrases[i] for i in sorted(phrases)[:SUMMARY_CLAUSES])


def explain_fields(reference: Sequence[bytes], incident: Sequence[bytes], *, service: str = "",
                   name: str = "", reference_durations_ns: Sequence[float] | np.ndarray | None = None,
                   incident_durations_ns: Sequence[float] | np.ndarray | None = None,
                   max_fields: int = MAX_FIELDS) -> tuple[tuple[FieldChange, ...], str]:
    """The fields that changed between the reference events and the incident's events, and one sentence.

    ``reference``/``incident`` are canonical span or log events (:mod:`detectors.canonical`); the optional
    ``*_durations_ns`` give each event's exact duration (one entry per event, ignored for logs, NaN for
    unknown) so durations are told exactly rather than from their log2 bucket. ``service`` and ``name`` (the
    stream's) prefix the summary. Never raises on the events' content; a durations list of the wrong length
    is a ValueError. Rows: ranked by ``bits``, at most ``max_fields`` (module doc).
    """
    ref = _side(reference, reference_durations_ns, REFERENCE_CAP)
    inc = _side(incident, incident_durations_ns, INCIDENT_CAP)
    prefix = _prefix(service, name)
    if ref.n == 0 or inc.n == 0:
        return (), f"{prefix}no {'reference' if ref.n == 0 else 'incident'} events to compare"
    rows = _duration_row(ref, inc)
    for field in _fields(ref, inc):
        rows += _categorical_rows(field, ref, inc)
    rows.sort(key=lambda r: (-r.change.bits, r.change.field, r.change.change))
    rows = rows[:max(max_fields, 0)]
    return tuple(r.change for r in rows), _summary(prefix, rows)


def _number(value: float) -> str:
    return f"{value:.4g}"


def _reference_band(model: str, expected: float, reference: np.ndarray) -> tuple[float, float] | None:
    values = reference[np.isfinite(reference)]
    if values.size < 2:
        return None
    if model == "range":
        return float(np.percentile(values, 0.5)), float(np.percentile(values, 99.5))
    if model == "mean":  # the values' own spread about the mean, not the size of a move
        spread = float(np.percentile(np.abs(values - values.mean()), 99.0))
        return expected - spread, expected + spread
    move = float(np.percentile(np.abs(np.diff(values)), 99.0))
    return expected - move, expected + move


def explain_band(explanation: Mapping[str, Any], *, service: str = "", name: str = "",
                 p_value: float | None = None, band: tuple[float, float] | None = None,
                 reference_values: Sequence[float] | np.ndarray | None = None,
                 band_by: str | None = None) -> tuple[tuple[FieldChange, ...], str]:
    """A metric window's explanation (the numeric detector's ``explanation`` dict) as one ``band`` row.

    The costliest value of ``top_events`` is compared with the band: ``band`` as given, else from the
    ``reference_values`` (the frozen reference): for the ``range`` predictor their 0.5-99.5 % quantiles, for
    the ``mean`` predictor the prediction +/- the 99th percentile of their distances from their mean, for
    the others the prediction +/- the 99th percentile of the reference's one-step moves. Without either the
    row names the prediction alone. ``band_by`` says what set a given band when the predictor did not
    (an incident's frozen range: "its range before the incident"); the predictor's expectation is then
    named beside it. ``bits`` is the sum of the top values' excess bits.
    """
    prefix = _prefix(service, name)
    tops = [t for t in explanation.get("top_events", []) if isinstance(t, Mapping)]
    try:
        observed, expected = float(tops[0]["observed"]), float(tops[0]["expected"])
    except (IndexError, KeyError, TypeError, ValueError):
        return (), f"{prefix}the values differ from the expected ones, but no value explains the change"
    model = str(explanation.get("model", ""))
    predictor = _PREDICTORS.get(model, "the recent values")
    if band is None and reference_values is not None:
        band = _reference_band(model, expected, np.asarray(reference_values, dtype=np.float64))
    bits = sum(max(float(t.get("excess_bits", 0.0)), 0.0) for t in tops)
    unusual = f"window p = {p_value:.2g}" if p_value is not None else f"{bits:.0f} bits above usual"
    now = f"observed {_number(observed)}"
    if band is not None and band_by is not None:
        low, high = sorted(band)
        side = "above" if observed > high else "below" if observed < low else "inside"
        before = f"{_number(low)} to {_number(high)} ({band_by}); about {_number(expected)} by {predictor}"
        summary = (f"{prefix}value {_number(observed)} {side} {band_by}, {_number(low)} to {_number(high)} "
                   f"({predictor} expected about {_number(expected)})")
        return (FieldChange(field="value", change="band", before=before, now=now, unusual=unusual,
                            bits=round(bits, 2)),), summary
    if band is not None:
        low, high = sorted(band)
        before = f"expected {_number(low)} to {_number(high)} (set by {predictor})"
        side = "above" if observed > high else "below" if observed < low else "inside"
        where = f"{side} the expected range {_number(low)} to {_number(high)}"
    else:
        before = f"expected about {_number(expected)} (set by {predictor})"
        where = f"where about {_number(expected)} was expected"
    change = FieldChange(field="value", change="band", before=before, now=now, unusual=unusual,
                         bits=round(bits, 2))
    summary = f"{prefix}value {_number(observed)} {where} (set by {predictor})"
    return (change,), summary


__all__ = ["INCIDENT_CAP", "MAX_FIELDS", "MIN_BITS", "REFERENCE_CAP", "engine_tokens", "explain_band",
           "explain_fields", "unmask"]
