"""Where the gateway's CPU goes, from the profiles ``bench_forwarding.py --profile PREFIX`` records
during its maximum-load phase (``harness.Profiler``):

1. by code, all threads (``perf``): the interpreter, upb, numba's compiled kernels (anonymous memory),
   gRPC's C core, SQLite and zstd, the kernel;
2. the GIL-held time by pipeline stage (``py-spy --gil``): a sample is charged to the first frame, from
   the leaf up, that belongs to a stage; this is the serial part, the one a second core cannot share;
3. the time inside numba kernels split between decoding and detection (``py-spy`` over all threads: a
   leaf frame on a line that calls a kernel, found by reading the sources, is time in that kernel).

    python bench/profile_summary.py PREFIX [--items N --cpu SECONDS] [--rate 200]
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KERNEL_PACKAGES = ("detectors._kernels", "otlp_gateway.otlp._kernels")

STAGES = (  # (stage, pattern on "function (path:line)"), the first match from the leaf up wins
    ("masking (canonical text of unseen values)", r"detectors/canonical/|otlp_gateway/otlp/values\.py"),
    ("annotation", r"otlp_gateway/otlp/annotate\.py|_annotate_and_serialize|detection/decision\.py"),
    ("decode/extract (Python)", r"otlp_gateway/otlp/"),
    ("detector, per-window Python", r"detectors/"),
    ("stream bookkeeping (ring, outcomes, table)", r"otlp_gateway/streams/"),
    ("detection stage (dispatch, turnstile, metrics)", r"otlp_gateway/detection/"),
    ("spool (durable FIFO: SQLite, zstd)", r"otlp_gateway/durable/"),
    ("exporter", r"otlp_gateway/exporter/"),
    ("receiver (gate, admission, ingest)", r"otlp_gateway/receiver/"),
    ("anomaly store writer", r"otlp_gateway/store/"),
    ("gRPC (Python side)", r"grpc/"),
    ("event loop", r"asyncio/|selectors\.py"),
    ("thread pools", r"concurrent/futures/|threading\.py"),
)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^()]*):(?P<line>\d+)\)$")


def kernel_call_lines() -> dict[str, set[int]]:
    """path (relative to the repository) -> lines on which a numba kernel is called."""
    found: dict[str, set[int]] = {}
    for path in [*REPO.glob("detectors/**/*.py"), *REPO.glob("otlp_gateway/**/*.py")]:
        tree = ast.parse(path.read_text())
        aliases: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in KERNEL_PACKAGES:
                aliases.update(a.asname or a.name for a in node.names)
            elif isinstance(node, ast.Import):
                aliases.update(a.asname or a.name for a in node.names
                               if a.name.startswith(KERNEL_PACKAGES))
        lines: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in aliases:
                lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        if lines:
            found[str(path.relative_to(REPO))] = lines
    return found


def classify(frames: list[str], kernels: dict[str, set[int]]) -> str:
    """``frames``: root first, as py-spy writes them."""
    for i, frame in enumerate(reversed(frames)):
        match = _FRAME.match(frame)
        if match is None:
            continue
        path, line = match["path"], int(match["line"])
        for source, lines in kernels.items():
            if i == 0 and path.endswith(source) and line in lines:
                return ("detector kernels (numba)" if source.startswith("detectors/")
                        else "decode/extract kernels (numba walk, assembly)")
        for stage, pattern in STAGES:
            if re.search(pattern, path):
                return stage
    return "other"


def thread_of(frames: list[str]) -> str:
    for frame in frames:
        if frame.startswith("thread ("):
            name = frame.split(": ", 1)[-1]
            return re.sub(r"_\d+$", "", name) if not name.startswith("Thread-") else name
    return "?"


def stacks(path: Path) -> list[tuple[list[str], int]]:
    out = []
    for raw in path.read_text().splitlines():
        stack, _, count = raw.rpartition(" ")
        if stack:
            out.append((stack.split(";"), int(count)))
    return out


DSO_GROUPS = (  # (group, pattern on perf's shared object name)
    ("numba kernels (compiled code)", r"^\[unknown\]$|^\[anon|^\[JIT|^//anon|perf-\d+\.map"),
    ("Python interpreter", r"libpython|^python"),
    ("upb (protobuf parse/serialize)", r"_message|upb"),
    ("gRPC C core", r"cygrpc|grpc"),
    ("kernel (syscalls, page faults)", r"kernel|vmlinux|\[vdso\]"),
    ("libc (malloc, memcpy, locks)", r"libc[.-]|libm[.-]|libstdc|ld-linux|libpthread"),
    ("SQLite", r"sqlite"),
    ("zstd", r"zstd|backend_c"),
    ("numpy", r"numpy|multiarray|openblas"),
    ("numba dispatch (calling into kernels)", r"numba|llvmlite|_dispatcher|_helperlib"),
)


def perf_by_dso(path: Path) -> Counter[str]:
    """Share of samples per DSO group (``perf report --sort dso``)."""
    done = subprocess.run(["perf", "report", "-i", str(path), "--stdio", "--sort", "dso", "--percent-limit",
                           "0.01"], capture_output=True, text=True, check=False)
    shares: Counter[str] = Counter()
    for line in done.stdout.splitlines():
        match = re.match(r"^\s*([\d.]+)%\s+(.+?)\s*$", line)
        if match is None:
            continue
        share, dso = float(match[1]) / 100, match[2]
        group = next((g for g, pattern in DSO_GROUPS if re.search(pattern, dso)), f"other ({dso})")
        shares[group] += share
    return shares


NATIVE_OUTSIDE_GIL = ("numba kernels (compiled code)", "gRPC C core", "kernel (syscalls, page faults)",
                      "SQLite", "zstd")
"""perf groups whose CPU is not Python bytecode (the rest is the interpreter and what it calls with the GIL
held: upb, numpy, libc, numba's dispatch)."""
PIPELINE = (  # (row of the estimate, GIL stages it takes, perf groups it takes, numba kernel stage)
    ("decode/extract (walk, assembly, grouping)",
     ("decode/extract (Python)", "decode/extract kernels (numba walk, assembly)"), (),
     "decode/extract kernels (numba walk, assembly)"),
    ("masking (canonical text of unseen values)", ("masking (canonical text of unseen values)",), (), None),
    ("detector kernels (numba)", ("detector kernels (numba)",), (), "detector kernels (numba)"),
    ("per-window Python (detector, stream bookkeeping)",
     ("detector, per-window Python", "stream bookkeeping (ring, outcomes, table)"), (), None),
    ("annotation", ("annotation",), (), None),
    ("spool (SQLite, zstd)", ("spool (durable FIFO: SQLite, zstd)",), ("SQLite", "zstd"), None),
    ("gRPC (C core and Python side)", ("gRPC (Python side)",), ("gRPC C core",), None),
    ("event loop, stage, thread hand-offs, receiver, exporter",
     ("event loop", "thread pools", "detection stage (dispatch, turnstile, metrics)",
      "receiver (gate, admission, ingest)", "exporter", "anomaly store writer", "other"), (), None),
    ("kernel (syscalls: network, futexes, page faults)", (), ("kernel (syscalls, page faults)",), None),
)


def estimate(cpu: float, perf: Counter[str], gil: Counter[str],
             inside: Counter[str]) -> list[tuple[str, float]]:
    """CPU seconds per pipeline row: the CPU the interpreter side used (perf) shared out by the GIL-held
    stages (py-spy --gil), numba's compiled code by where kernels ran (py-spy), native groups as they are."""
    python = cpu * (1 - sum(perf[g] for g in NATIVE_OUTSIDE_GIL))
    gil_total = sum(gil.values()) or 1
    numba = cpu * perf["numba kernels (compiled code)"]
    inside_total = sum(inside.values()) or 1
    rows = []
    for row, stages, groups, kernel in PIPELINE:
        seconds = python * sum(gil[s] for s in stages) / gil_total + cpu * sum(perf[g] for g in groups)
        if kernel is not None:
            seconds += numba * inside[kernel] / inside_total
        rows.append((row, seconds))
    return rows


def summarize(prefix: str, items: int | None = None, cpu: float | None = None, rate: float = 200.0) -> None:
    """Print the breakdowns of the profiles ``prefix.*``; with ``items`` and ``cpu`` (process CPU seconds
    while profiling) in us per item, and the estimate per pipeline stage."""
    def per_item(seconds: float) -> str:
        return f"{seconds / items * 1e6:8.2f} us/item" if items else ""

    perf = Path(f"{prefix}.perf.data")
    by_dso: Counter[str] = Counter()
    if perf.exists() and cpu is not None:
        by_dso = perf_by_dso(perf)
        print("  CPU by code, all threads (perf):")
        for group, share in by_dso.most_common():
            if share >= 0.002:
                print(f"    {group:<50} {100 * share:5.1f} %  {per_item(share * cpu)}")
    kernels = kernel_call_lines()
    gil = Path(f"{prefix}.gil.txt")
    stages: Counter[str] = Counter()
    if gil.exists():
        threads: Counter[str] = Counter()
        for frames, n in stacks(gil):
            stages[classify(frames, kernels)] += n
            threads[thread_of(frames)] += n
        total = sum(stages.values())
        held = total / rate
        share = f" = {100 * held / cpu:.0f} % of the process CPU" if cpu else ""
        print(f"  GIL held (py-spy --gil): {held:.2f} s{share}; {per_item(held).strip()}; by stage:")
        for stage, n in stages.most_common():
            if n / total >= 0.002:
                print(f"    {stage:<50} {100 * n / total:5.1f} %  {per_item(n / rate)}")
        busiest = threads.most_common(6)
        print("    by thread: " + ", ".join(f"{t} {100 * n / total:.0f} %" for t, n in busiest))
    every = Path(f"{prefix}.all.txt")
    inside: Counter[str] = Counter()
    if every.exists():
        for frames, n in stacks(every):
            stage = classify(frames, kernels)
            if "kernels" in stage:
                inside[stage] += n
        total = sum(inside.values()) or 1
        print("  time inside numba kernels (py-spy, every thread): " + ", ".join(
            f"{stage} {100 * n / total:.0f} %" for stage, n in inside.most_common()))
    if by_dso and stages and cpu is not None and items:
        print("  estimate per pipeline stage (perf's CPU, the interpreter's share split by the GIL stages):")
        for row, seconds in estimate(cpu, by_dso, stages, inside):
            if seconds / cpu >= 0.002:
                print(f"    {row:<56} {100 * seconds / cpu:5.1f} %  {per_item(seconds)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prefix", help="the --profile PREFIX of bench_forwarding.py, with its .<signal>")
    ap.add_argument("--rate", type=float, default=200.0, help="py-spy's sampling rate (Hz)")
    ap.add_argument("--items", type=int, help="items processed while profiling (prints us per item)")
    ap.add_argument("--cpu", type=float, help="process CPU seconds while profiling")
    args = ap.parse_args()
    summarize(args.prefix, args.items, args.cpu, args.rate)


if __name__ == "__main__":
    main()
