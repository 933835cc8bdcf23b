"""The Dockerfile: hadolint clean and the essentials the image promises (multi-stage slim Python, non-root,
numba cache compiled at build, health check on /healthz, the three ports, `otlp-gateway` entrypoint)."""

from __future__ import annotations

import fnmatch
import re

from tests.deploy.dockerfile import env_of, parse
from tests.deploy.support import REPO, require_tool, run

DOCKERFILE = REPO / "Dockerfile"


def test_hadolint_reports_nothing():
    hadolint = require_tool("hadolint")
    result = run([hadolint, "--no-color", str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path):
    """The lint can fail: an untagged base image must be reported."""
    hadolint = require_tool("hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install -y curl\nCMD python app.py\n", encoding="utf-8")
    result = run([hadolint, "--no-color", str(bad)])
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # always tag the image


def test_multi_stage_slim_python_non_root():
    stages = parse(DOCKERFILE)
    assert len(stages) >= 2
    assert all(s.base == "python:3.11-slim" for s in stages)
    runtime = stages[-1]
    user = runtime.last("USER").args
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root uid, so runAsNonRoot can verify it"
    copies = runtime.all("COPY")
    assert any("--from=" in c.args for c in copies), "the runtime stage copies the built venv"
    assert not any("pip install" in r.args for r in runtime.all("RUN")), "installs happen in the build stage"


def test_numba_cache_is_compiled_at_build_as_the_runtime_user():
    runtime = parse(DOCKERFILE)[-1]
    names = [i.keyword for i in runtime.instructions]
    warmup = next(i for i, ins in enumerate(runtime.instructions)
                  if ins.keyword == "RUN" and "otlp-gateway warmup" in ins.args)
    assert names.index("USER") < warmup, "compile after USER so the cache belongs to the runtime user"
    env = env_of(runtime)
    assert env["NUMBA_CACHE_DIR"].startswith("/")
    assert env["NUMBA_CPU_NAME"] == "generic", "a cache compiled for the build host misses on other CPUs"


def test_ports_healthcheck_entrypoint_and_cmd():
    runtime = parse(DOCKERFILE)[-1]
    assert set(runtime.last("EXPOSE").args.split()) == {"4317", "4318", "8080"}
    health = runtime.last("HEALTHCHECK").exec_form()
    assert health[:2] == ["python", "-c"] and "http://127.0.0.1:8080/healthz" in health[2]
    assert runtime.last("ENTRYPOINT").exec_form() == ["otlp-gateway"]
    cmd = runtime.last("CMD").exec_form()
    assert cmd[:2] == ["serve", "--config"]
    # The config the CMD names is the one the image copies in, from a file the repository has.
    (config_copy,) = [c for c in runtime.all("COPY") if c.args.endswith(" " + cmd[2])]
    source = config_copy.args.split()[0]
    assert (REPO / source).is_file()


def test_build_context_holds_every_copied_path():
    """Everything COPY reads exists and survives .dockerignore."""
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")]
    for stage in parse(DOCKERFILE):
        for copy in stage.all("COPY"):
            if "--from=" in copy.args:
                continue
            sources = [a for a in copy.args.split() if not a.startswith("--")][:-1]
            for source in sources:
                assert (REPO / source).exists(), source
                top = source.split("/")[0]
                assert not any(fnmatch.fnmatch(top, pattern) for pattern in ignored), (
                    f"{source} is excluded by .dockerignore")


def test_stop_signal_is_sigterm_and_cmd_needs_no_shell():
    runtime = parse(DOCKERFILE)[-1]
    assert runtime.last("STOPSIGNAL").args == "SIGTERM"
    # Exec form: otlp-gateway is PID 1 and receives SIGTERM itself (a shell would swallow it).
    assert re.match(r"^\[", runtime.last("ENTRYPOINT").args)
