"""Masking alone, per value: the regex (``mask_text``, one call per value) against the numba kernel
(``mask_texts``, one call per request's values), on the values of never-repeated traffic.

The values are those the gateway renders when its fragment memo misses: every string attribute value of
the spans (``url.path``, ``enduser.id``, ``client.address``, ...) or log records, and the span names or
log bodies, of ``--requests`` requests of ``bench/traffic.py`` (unique ids, paths, users, addresses),
deduplicated within each request. Each request's values are one batch (as one render round of the
extraction). Three levels, thread CPU time, best of ``--rounds``:

* ``mask``: ``mask_text`` per value against ``mask_texts`` per batch;
* ``kernel``: the kernel call alone (values already packed), the floor of the batch form;
* ``render``: an attribute fragment's text, ``attributes_text({k: v})`` per pair against
  ``attribute_texts`` per batch (identifier keys, the 48-character rule: what the extraction calls).

    python bench/bench_masking.py [--signal traces|logs|both] [--requests 40] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import load_average
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from traffic import TrafficGenerator

from detectors._kernels import mask as kernel
from detectors.canonical import attribute_texts, mask_text, mask_texts
from detectors.canonical._values import attributes_text


def request_values(signal: str, raw: bytes) -> tuple[list[str], list[tuple[str, object]]]:
    """(texts masked, attribute pairs) of one request, each deduplicated as the memo would."""
    texts: dict[str, None] = {}
    pairs: dict[tuple[str, object], None] = {}
    if signal == "traces":
        request = ExportTraceServiceRequest.FromString(raw)
        items = [(s.name, s.attributes) for rs in request.resource_spans for ss in rs.scope_spans
                 for s in ss.spans]
    else:
        logs = ExportLogsServiceRequest.FromString(raw)
        items = [(r.body.string_value, r.attributes) for rl in logs.resource_logs for sl in rl.scope_logs
                 for r in sl.log_records]
    for head, attributes in items:
        texts[head] = None
        for kv in attributes:
            kind = kv.value.WhichOneof("value")
            value = getattr(kv.value, kind) if kind else None
            pairs[(kv.key, value)] = None
            if isinstance(value, str):
                texts[value] = None
    return list(texts), list(pairs)


def best_of(rounds: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.thread_time()
        run()
        best = min(best, time.thread_time() - start)
    return best


def bench(signal: str, requests: int, rounds: int) -> None:
    gen = TrafficGenerator(seed=7)
    batches = [request_values(signal, raw) for raw in gen.requests(signal, requests)]
    texts = [b[0] for b in batches]
    pairs = [b[1] for b in batches]
    n_texts = sum(map(len, texts))
    n_pairs = sum(map(len, pairs))
    chars = sum(len(t) for batch in texts for t in batch)
    for batch in texts:  # the same output, and the kernel compiled before timing
        assert mask_texts(batch) == [mask_text(t) for t in batch]
    packed = []
    for batch in texts:
        lens = np.fromiter(map(len, batch), dtype=np.int64, count=len(batch))
        packed.append((np.frombuffer("".join(batch).encode(), dtype=np.uint8), np.cumsum(lens) - lens, lens,
                       np.empty(kernel.out_size(lens), dtype=np.uint8), np.empty(len(batch), dtype=np.int64),
                       np.empty(len(batch), dtype=np.int64)))

    regex = best_of(rounds, lambda: [[mask_text(t) for t in batch] for batch in texts])
    batched = best_of(rounds, lambda: [mask_texts(batch) for batch in texts])
    bare = best_of(rounds, lambda: [kernel.mask_batch(*p) for p in packed])
    one_by_one = best_of(rounds, lambda: [[attributes_text({k: v})[2:] for k, v in batch] for batch in pairs])
    together = best_of(rounds, lambda: [attribute_texts(batch) for batch in pairs])

    print(f"\n{signal}: {requests} requests, {n_texts} distinct texts ({chars / n_texts:.0f} characters on "
          f"average, {n_texts / requests:.0f} per request), {n_pairs} distinct attribute pairs")
    print(f"  mask    regex per value   {regex / n_texts * 1e9:8.0f} ns per value")
    print(f"  mask    kernel per batch  {batched / n_texts * 1e9:8.0f} ns per value   "
          f"({regex / batched:.1f}x less)")
    print(f"  kernel  call alone        {bare / n_texts * 1e9:8.0f} ns per value   "
          f"({bare / chars * 1e9:.1f} ns per character)")
    print(f"  render  one by one        {one_by_one / n_pairs * 1e9:8.0f} ns per pair")
    print(f"  render  per batch         {together / n_pairs * 1e9:8.0f} ns per pair    "
          f"({one_by_one / together:.1f}x less)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--signal", choices=["traces", "logs", "both"], default="both")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(load_average())
    for signal in (["traces", "logs"] if args.signal == "both" else [args.signal]):
        bench(signal, args.requests, args.rounds)
    print(load_average())


if __name__ == "__main__":
    main()
