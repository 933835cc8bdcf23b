"""Gateway start-up time with an empty and with a warm JIT cache (issue: ready <= 2 s with a warm cache).

Starts the gateway child process (detection on, embedded defaults) ``--runs`` times against one fresh
``detection.jit_cache_dir``: the first start compiles every kernel (cold), the later ones load them from the
cache (warm). For each start prints the wall time and the gateway's CPU time from spawning the process to
``/readyz`` answering 200 (what a load balancer or Kubernetes waits for) and to the API application
answering (``/openapi.json``: it is built after ready, see otlp_gateway/api/front.py), and the wall time to
the process going idle (every kernel compiled or loaded; the receivers accept data before that, see
tests/reliability/test_cold_start.py), with the load average: on this shared 2-core machine wall time moves
with the other work on it, CPU time much less.

    python bench/bench_startup.py [--runs 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import GatewayProcess, free_port, load_average, median


async def time_to_answer(gateway: GatewayProcess, path: str, began: float,
                         timeout: float) -> tuple[float, float]:
    """(wall seconds since ``began``, CPU seconds of the gateway) when ``path`` first answers 200."""
    async with httpx.AsyncClient() as client:
        while time.monotonic() - began < timeout:
            try:
                response = await client.get(f"http://127.0.0.1:{gateway.api_port}{path}", timeout=1)
                if response.status_code == 200:
                    return time.monotonic() - began, gateway.cpu_seconds()
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.02)
    raise TimeoutError(f"{path} not 200 after {timeout} s; log in {gateway.workdir / 'gateway.log'}")


async def time_to_ready(gateway: GatewayProcess, began: float, timeout: float) -> tuple[float, float]:
    """``time_to_answer`` of /readyz and, polled beside it, of the API application (``/openapi.json``)."""
    ready, api = await asyncio.gather(time_to_answer(gateway, "/readyz", began, timeout),
                                      time_to_answer(gateway, "/openapi.json", began, timeout))
    return ready + api


async def one_start(cache_dir: Path, timeout: float = 1200.0) -> tuple[float, float, float, float, float]:
    """(wall and CPU seconds to ready, wall and CPU seconds to the API answering, wall seconds to idle) of
    one gateway start using ``cache_dir`` for compiled kernels."""
    # nothing listens on the downstream port: start-up must not depend on the downstream
    gateway = GatewayProcess(downstream_port=free_port(), detection=True,
                             overrides={"detection": {"jit_cache_dir": str(cache_dir)}})
    try:
        began = time.monotonic()
        ready_task = asyncio.create_task(time_to_ready(gateway, began, timeout))
        await gateway.start(timeout)
        idle = time.monotonic() - began
        ready, ready_cpu, api, api_cpu = await ready_task
        return ready, ready_cpu, api, api_cpu, idle
    finally:
        gateway.stop()
        shutil.rmtree(gateway.workdir, ignore_errors=True)


async def main(runs: int) -> None:
    # the container image compiles every module to bytecode at build time (Dockerfile: compileall); let the
    # cold start write the .pyc files so the warm starts measure what a pod does, not source compilation
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    cache_dir = Path(tempfile.mkdtemp(prefix="bench-jit-"))
    try:
        warm_ready: list[float] = []
        warm_cpu: list[float] = []
        warm_api: list[float] = []
        for run in range(runs):
            ready, ready_cpu, api, api_cpu, idle = await one_start(cache_dir)
            label = "cold (empty JIT cache)" if run == 0 else "warm (cached kernels)"
            print(f"{label:24s} ready {ready:6.2f} s wall, {ready_cpu:6.2f} s CPU; API {api:6.2f} s wall, "
                  f"{api_cpu:6.2f} s CPU; idle {idle:6.2f} s   {load_average()}", flush=True)
            if run:
                warm_ready.append(ready)
                warm_cpu.append(ready_cpu)
                warm_api.append(api_cpu)
        if warm_ready:
            print(f"warm, median of {len(warm_ready)}: ready {median(warm_ready):.2f} s wall, "
                  f"{median(warm_cpu):.2f} s CPU (goal <= 2 s; wall equals CPU only on an idle machine); "
                  f"API answering at {median(warm_api):.2f} s CPU")
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4, help="starts in all; the first is the cold one")
    asyncio.run(main(parser.parse_args().runs))
