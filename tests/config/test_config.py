"""Configuration: env expansion, strict validation with paths, precedence, masking, documented defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from otlp_gateway.config import ConfigError, GatewayConfig, expand_env, load_config, parse_duration_seconds
from otlp_gateway.config_doc import render_default_config

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return path


def test_env_expansion_with_defaults_and_escape() -> None:
    env = {"HOST": "collector", "EMPTY": ""}
    assert expand_env("${HOST}:${PORT:-4317}", env) == "collector:4317"
    assert expand_env("${EMPTY:-fallback} ${MISSING} $${HOST}", env) == "fallback  ${HOST}"


def test_file_values_are_expanded_before_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, "exporter:\n  endpoint: ${DOWNSTREAM:-grpc://localhost:4317}\n"
                           "receiver:\n  max_request_bytes: ${LIMIT}\n")
    config = load_config(path, env={"LIMIT": "1024"})
    assert config.exporter.endpoint == "grpc://localhost:4317"
    assert config.receiver.max_request_bytes == 1024


def test_every_error_is_reported_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, "receiver:\n  grpc_listen: nonsense\n  colour: blue\n"
                           "exporter:\n  endpoint: ftp://x\ndetection:\n  profile: paranoid\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    errors = "\n".join(info.value.errors)
    assert "receiver.grpc_listen" in errors
    assert "receiver.colour: unknown key" in errors
    assert "exporter.endpoint" in errors
    assert "detection.profile" in errors
    assert len(info.value.errors) == 4


def test_runbook_environment_knobs_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "store:\n  max_open_conns: 5\napi:\n  rate_limit:\n    rps: 10\n")
    env = {"DB_MAX_OPEN_CONNS": "25", "DB_CONN_MAX_LIFETIME": "1h", "GLOBAL_RATE_LIMIT_RPS": "1000",
           "GLOBAL_RATE_LIMIT_BURST": "2000", "DATABASE_URL": "postgresql://u:secret@db/x"}
    config = load_config(path, env=env)
    assert config.store.max_open_conns == 25
    assert config.store.conn_max_lifetime_seconds == 3600
    assert (config.api.rate_limit.rps, config.api.rate_limit.burst) == (1000, 2000)
    assert config.store.database_url is not None
    assert config.store.database_url.get_secret_value() == "postgresql://u:secret@db/x"


def test_flags_override_environment() -> None:
    config = load_config(None, env={"DATABASE_URL": "postgresql://env/db"},
                         overrides={("store", "database_url"): "postgresql://flag/db"})
    assert config.store.database_url is not None
    assert config.store.database_url.get_secret_value() == "postgresql://flag/db"


def test_short_jwt_secret_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"api\.jwt_secret"):
        load_config(None, env={"JWT_SECRET": "too-short"})


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600),
                                                ("250ms", 0.25)])
def test_go_style_durations(text: str, seconds: float) -> None:
    assert parse_duration_seconds(text) == seconds


def test_secrets_are_masked_and_never_hashed() -> None:
    a = load_config(None, env={"JWT_SECRET": "a" * 32})
    b = load_config(None, env={"JWT_SECRET": "b" * 32})
    unset = load_config(None, env={})
    assert a.masked()["api"]["jwt_secret"] == "***"
    assert a.config_hash() == b.config_hash()  # no offline guessing of a secret against the hash
    assert a.config_hash() != unset.config_hash()  # whether a secret is set still counts
    assert a.secrets_set()["api.jwt_secret"] and not unset.secrets_set()["api.jwt_secret"]
    slower = load_config(None, env={"JWT_SECRET": "a" * 32, "GLOBAL_RATE_LIMIT_RPS": "5"})
    assert a.config_hash() != slower.config_hash()


def test_documented_default_config_is_in_step_with_the_code() -> None:
    shipped = (REPO / "config" / "gateway.yaml").read_text()
    regenerate = "python -m otlp_gateway.config_doc > config/gateway.yaml"
    assert shipped == render_default_config(), f"out of date; regenerate: {regenerate}"
    loaded = load_config(REPO / "config" / "gateway.yaml", env={})
    defaults = GatewayConfig()
    assert loaded.model_dump(exclude={"data_dir"}) == defaults.model_dump(exclude={"data_dir"})


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "otlp_gateway", *args], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://u:pw@h/db"})


def test_check_config_prints_resolved_config_with_secrets_masked(tmp_path: Path) -> None:
    text = "exporter:\n  headers:\n    authorization: s3cr3t-header\n"
    result = run_cli("check-config", str(write(tmp_path, text)))
    assert result.returncode == 0, result.stderr
    assert '"database_url": "***"' in result.stdout
    assert '"authorization": "***"' in result.stdout
    assert ":pw@" not in result.stdout and "s3cr3t-header" not in result.stdout


def test_check_config_exits_1_with_every_error(tmp_path: Path) -> None:
    bad = "receiver:\n  nope: 1\nexporter:\n  timeout_seconds: -1\n"
    result = run_cli("check-config", str(write(tmp_path, bad)))
    assert result.returncode == 1
    assert "receiver.nope: unknown key" in result.stderr
    assert "exporter.timeout_seconds" in result.stderr


def test_version_command() -> None:
    result = run_cli("version")
    assert result.returncode == 0
    assert result.stdout.startswith("otlp-gateway ")
