"""What scoring through a detector process costs: the same requests scored in-process and through one
detector process (``detection.detector_processes``), alternately, on never-repeated traffic.

``--requests`` requests of ``bench/traffic.py`` (512 spans in 48 span streams, or 512 log records with
``--signal logs``; ``--streams N``: N streams, a request reaching 4 services' of them, so past 64 streams a
detector is fed after many others) are extracted once; each round
scores all of them on fresh streams, in-process (``LiveStream.score``) or through one ``DetectorProcess``
(``score_together``: a request's updates in one message, as a shard sends them). Printed per span: this
process's CPU (thread time of the scoring thread: the gateway's side) and the detector process's CPU.

    python bench/bench_detector_processes.py [--requests 120] [--rounds 2] [--signal traces|logs]
                                             [--streams 48]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import Future
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from traffic import TrafficGenerator  # noqa: E402

from otlp_gateway.detection.detector_processes import DetectorProcess, score_together  # noqa: E402
from otlp_gateway.otlp.codec import ExtractionOptions, RequestCodec  # noqa: E402
from otlp_gateway.streams.live import LiveStream, detector_spec  # noqa: E402
from otlp_gateway.streams.settings import StreamSettings  # noqa: E402


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--signal", choices=("traces", "logs"), default="traces")
    parser.add_argument("--streams", type=int, default=None, help="streams of the traffic (default 48)")
    args = parser.parse_args()
    generator = TrafficGenerator(seed=1, streams=args.streams)
    codec = RequestCodec(ExtractionOptions())
    make = generator.traces if args.signal == "traces" else generator.logs
    requests = [codec.extract(args.signal, make(512)).streams for _ in range(args.requests)]
    spec = detector_spec(args.signal, 42, "cm", StreamSettings(profile="balanced"))
    os.environ["PYTHONPATH"] = str(REPO)  # the detector process imports this checkout, as this script does
    process = DetectorProcess("bench-detector-process")
    process.start()
    pid = process.pid()
    unit = "span" if args.signal == "traces" else "log record"
    assert pid is not None
    try:
        for _ in range(args.rounds):
            for through_process in (False, True):
                streams: dict[str, LiveStream] = {}
                spans = 0
                own0, child0 = time.thread_time(), process_cpu(pid)
                for seq, request in enumerate(requests):
                    jobs = []
                    for batch in request.values():
                        stream = streams.get(batch.key.stream_id)
                        if stream is None:
                            place = {"place": process} if through_process else {}
                            stream = streams[batch.key.stream_id] = LiveStream(batch.key, spec, 0, **place)
                        spans += len(batch.times)
                        if through_process:
                            jobs.append((stream, batch, seq, Future()))
                        else:
                            stream.score(batch, seq)
                    if jobs:
                        score_together(process, jobs)
                        for *_, future in jobs:
                            future.result()
                own = (time.thread_time() - own0) / spans * 1e6
                child = (process_cpu(pid) - child0) / spans * 1e6
                mode = "through a detector process" if through_process else "in-process"
                print(f"{mode:>28}: {spans} {unit}s, this process {own:6.1f} us CPU/{unit}, "
                      f"detector process {child:6.1f} us CPU/{unit}; load {os.getloadavg()[0]:.2f}")
    finally:
        process.close()


if __name__ == "__main__":
    main()
