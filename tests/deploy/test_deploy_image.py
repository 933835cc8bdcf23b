"""The image's commands work from a clean install of the repository: a fresh virtualenv gets exactly
what the Dockerfile's build stage copies, then runs ENTRYPOINT + CMD (and the one-off commands) the way
the container would, with the image's paths mapped into a temporary directory.

One install per module (uv when available: seconds with its cache; pip otherwise: over a minute)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.dockerfile import env_of, parse
from tests.deploy.support import REPO, run
from tests.fixtures.waiting import free_ports

RUNTIME = parse(REPO / "Dockerfile")[-1]
ENTRYPOINT = RUNTIME.last("ENTRYPOINT").exec_form()
CMD = RUNTIME.last("CMD").exec_form()
IMAGE_CONFIG = CMD[CMD.index("--config") + 1]


@dataclass
class Image:
    root: Path
    bin: Path
    config: Path
    env: dict[str, str]

    def command(self, argv: list[str]) -> list[str]:
        """An exec-form command of the image, with image paths mapped into this directory."""
        mapped = [str(self.config) if a == IMAGE_CONFIG else a for a in argv]
        return [str(self.bin / mapped[0]), *mapped[1:]]

    def run(self, argv: list[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(argv), env=self.env, cwd=self.root, capture_output=True,
                              text=True, timeout=timeout, check=False)


def _build_context(target: Path) -> None:
    """What the build stage COPYs, nothing else (so a file missing from those COPYs breaks the install)."""
    build = parse(REPO / "Dockerfile")[0]
    for copy in build.all("COPY"):
        for source in [a for a in copy.args.split() if not a.startswith("--")][:-1]:
            path = REPO / source
            if path.is_dir():
                shutil.copytree(path, target / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(path, target / source)


def _install(venv: Path, context: Path) -> None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv:
        steps = [[uv, "venv", "-q", "--python", sys.executable, str(venv)],
                 [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), str(context)]]
    else:
        steps = [[sys.executable, "-m", "venv", str(venv)],
                 [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(context)]]
    for step in steps:
        result = run(step, timeout=600)
        assert result.returncode == 0, f"{' '.join(step)}\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    root = tmp_path_factory.mktemp("image")
    context = root / "src"
    context.mkdir()
    _build_context(context)
    _install(root / "venv", context)
    config = root / IMAGE_CONFIG.lstrip("/")
    config.parent.mkdir(parents=True)
    (config_copy,) = [c for c in RUNTIME.all("COPY") if c.args.endswith(" " + IMAGE_CONFIG)]
    shutil.copy2(REPO / config_copy.args.split()[0], config)
    image_env = env_of(RUNTIME)
    env = {
        "PATH": f"{root / 'venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(root / "home"),
        "NUMBA_CACHE_DIR": str(root / "numba-cache"),
        "NUMBA_CPU_NAME": image_env["NUMBA_CPU_NAME"],
        "PYTHONUNBUFFERED": "1",
    }
    return Image(root, root / "venv" / "bin", config, env)


def test_version_matches_the_package(image: Image):
    result = image.run([*ENTRYPOINT, "version"])
    assert result.returncode == 0, result.stderr
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert version in result.stdout


def test_check_config_accepts_the_image_config(image: Image):
    result = image.run([*ENTRYPOINT, "check-config", IMAGE_CONFIG])
    assert result.returncode == 0, result.stderr
    assert "configuration valid" in result.stderr


def test_check_config_rejects_a_typo(image: Image, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("receiver:\n  grpc_lisen: 0.0.0.0:4317\n", encoding="utf-8")
    result = image.run([*ENTRYPOINT, "check-config", str(bad)])
    assert result.returncode != 0
    assert "receiver.grpc_lisen" in result.stderr


def test_warmup_fills_the_numba_cache(image: Image):
    """The build step `otlp-gateway warmup` leaves compiled kernels in NUMBA_CACHE_DIR."""
    warmup = next(r for r in RUNTIME.all("RUN") if "otlp-gateway warmup" in r.args)
    argv = warmup.args.split()
    result = image.run(argv, timeout=300)
    assert result.returncode == 0, result.stderr
    cache = Path(image.env["NUMBA_CACHE_DIR"])
    assert list(cache.rglob("*.nbi")), "no numba index files were written"
    assert list(cache.rglob("*.nbc")), "no compiled kernels were written"


def test_migrate_is_a_repeatable_one_off_command(image: Image):
    data = image.root / "migrate-data"
    outputs = []
    for _ in range(2):
        result = image.run([*ENTRYPOINT, "migrate", "--config", IMAGE_CONFIG, "--data-dir", str(data)])
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs[0].startswith("applied: 0001_"), outputs[0]
    assert outputs[1].strip() == "schema up to date", outputs[1]


@pytest.fixture
def serving(image: Image) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """ENTRYPOINT + CMD, listening on loopback ports instead of the image's fixed ones."""
    grpc_port, http_port, api_port = free_ports(3)
    argv = [*ENTRYPOINT, *CMD]
    data_dir_index = argv.index("--data-dir") + 1
    argv[data_dir_index] = str(image.root / "serve-data")
    argv += ["--grpc-listen", f"127.0.0.1:{grpc_port}", "--http-listen", f"127.0.0.1:{http_port}",
             "--api-listen", f"127.0.0.1:{api_port}"]
    log = (image.root / "serve.log").open("w")
    process = subprocess.Popen(image.command(argv), env=image.env, cwd=image.root, stdout=log,
                               stderr=subprocess.STDOUT, text=True)
    try:
        yield process, api_port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_serve_becomes_healthy_and_drains_on_sigterm(image: Image, serving):
    process, api_port = serving
    health = RUNTIME.last("HEALTHCHECK").exec_form()
    probe = [health[0], health[1], health[2].replace("127.0.0.1:8080", f"127.0.0.1:{api_port}")]
    deadline = time.monotonic() + 120
    healthy = False
    while time.monotonic() < deadline and process.poll() is None:
        if image.run(probe, timeout=10).returncode == 0:
            healthy = True
            break
        time.sleep(0.5)  # polling interval of the health probe, not a wait for a condition
    log = (image.root / "serve.log").read_text()
    assert healthy, f"the image's HEALTHCHECK never passed (exit {process.poll()}):\n{log[-4000:]}"
    # The readiness probe's path turns 200 once kernels are loaded and the receivers serve.
    readyz = f"http://127.0.0.1:{api_port}/readyz"
    while time.monotonic() < deadline and _status(readyz) != 200:
        time.sleep(0.5)
    assert _status(readyz) == 200, (image.root / "serve.log").read_text()[-4000:]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=45) == 0, (image.root / "serve.log").read_text()[-4000:]
