"""``otlp-gateway``: serve, check-config, migrate, warmup, api-keys, version."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from otlp_gateway import __version__
from otlp_gateway.config import ConfigError, GatewayConfig, load_config
from otlp_gateway.log_setup import setup_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otlp-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway until SIGTERM/SIGINT")
    serve.add_argument("--config", metavar="FILE", help="YAML configuration file")
    serve.add_argument("--grpc-listen", metavar="HOST:PORT", help="OTLP gRPC listen address (0.0.0.0:4317)")
    serve.add_argument("--http-listen", metavar="HOST:PORT", help="OTLP HTTP listen address (0.0.0.0:4318)")
    serve.add_argument("--api-listen", metavar="HOST:PORT", help="API, UI, health, metrics (0.0.0.0:8080)")
    serve.add_argument("--forward-to", metavar="URL",
                       help="downstream OTLP endpoint: grpc://host:port or http(s)://host:port")
    serve.add_argument("--database-url", metavar="DSN", help="Postgres DSN (default: embedded SQLite)")
    serve.add_argument("--data-dir", metavar="DIR", help="embedded store and spools (default: per-user dir)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", choices=["text", "json"],
                       help="text lines, or one JSON object per line (ts, level, logger, msg, fields)")

    check = sub.add_parser("check-config", help="validate a configuration file and print it resolved")
    check.add_argument("file")

    migrate = sub.add_parser("migrate", help="apply database migrations (idempotent) and exit")
    migrate.add_argument("--config", metavar="FILE")
    migrate.add_argument("--database-url", metavar="DSN")
    migrate.add_argument("--data-dir", metavar="DIR")

    warm = sub.add_parser("warmup", help="compile every kernel into the JIT cache directory and exit")
    warm.add_argument("--config", metavar="FILE")

    keys = sub.add_parser("api-keys", help="manage API keys (create, list, rotate, revoke)")
    keys.add_argument("--config", metavar="FILE")
    keys.add_argument("--database-url", metavar="DSN")
    keys.add_argument("--data-dir", metavar="DIR")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; its secret is printed once")
    create.add_argument("--role", choices=["admin", "operator", "read"], required=True,
                        help="admin: everything; operator: read, and act on incidents; read: GET only")
    create.add_argument("--name", default="cli")
    keys_sub.add_parser("list", help="list keys (never their secrets)")
    rotate = keys_sub.add_parser("rotate", help="replace a key's secret; the old one stops working")
    rotate.add_argument("key_id")
    revoke = keys_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")

    sub.add_parser("version", help="print the version")
    return parser


def _config_from(args: argparse.Namespace) -> GatewayConfig:
    overrides: dict[tuple[str, ...], Any] = {
        ("receiver", "grpc_listen"): getattr(args, "grpc_listen", None),
        ("receiver", "http_listen"): getattr(args, "http_listen", None),
        ("api", "listen"): getattr(args, "api_listen", None),
        ("exporter", "endpoint"): getattr(args, "forward_to", None),
        ("store", "database_url"): getattr(args, "database_url", None),
        ("data_dir",): getattr(args, "data_dir", None),
        ("log_level",): getattr(args, "log_level", None),
        ("log_format",): getattr(args, "log_format", None),
    }
    return load_config(getattr(args, "config", None), overrides=overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"otlp-gateway {__version__}")
        return 0
    try:
        config = load_config(args.file) if args.command == "check-config" else _config_from(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.command == "check-config":
        print(json.dumps(config.masked(), indent=2, sort_keys=True, default=str))
        print(f"# configuration valid; hash {config.config_hash()}", file=sys.stderr)
        return 0
    setup_logging(config.log_level, config.log_format)
    if args.command in ("serve", "warmup"):  # before any kernel module is imported (see otlp_gateway.jit)
        from otlp_gateway.jit import cache_dir, use_cache_dir

        jit_dir = use_cache_dir(cache_dir(config.detection.jit_cache_dir))
    if args.command == "serve":
        return _serve(config, args.config)
    if args.command == "migrate":
        return asyncio.run(_migrate(config))
    if args.command == "warmup":
        return _warmup(config, jit_dir)
    if args.command == "api-keys":
        return asyncio.run(_api_keys(config, args))
    raise AssertionError(args.command)


def _serve(config: GatewayConfig, config_path: str | None) -> int:
    from otlp_gateway.app import Gateway

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # optional speed-up
        pass
    asyncio.run(Gateway(config, config_path).run_until_signalled())
    return 0


def _warmup(config: GatewayConfig, jit_dir: Path) -> int:
    """Compile every kernel group, one progress line before and after each (compiling takes ~15-50 s cold)."""
    import time

    from otlp_gateway.jit import warm_up_kernels

    started = time.perf_counter()
    print(f"warmup: compiling kernels into the JIT cache directory {jit_dir}", flush=True)

    def show(step: int, steps: int, group: str, seconds: float | None) -> None:
        if seconds is None:
            print(f"warmup [{step}/{steps}] {group}: compiling ...", flush=True)
        else:
            print(f"warmup [{step}/{steps}] {group}: done in {seconds:.1f} s "
                  f"(elapsed {time.perf_counter() - started:.1f} s)", flush=True)

    warm_up_kernels(config.detection.seed, show)
    print(f"kernels compiled and cached in {jit_dir} in {time.perf_counter() - started:.1f} s", flush=True)
    return 0


async def _migrate(config: GatewayConfig) -> int:
    from otlp_gateway.store import run_migrations

    applied = await run_migrations(config.store, Path(config.data_dir))
    print("applied: " + ", ".join(applied) if applied else "schema up to date")
    return 0


async def _api_keys(config: GatewayConfig, args: argparse.Namespace) -> int:

    from otlp_gateway.api.keys import (
        KeyRevokedError,
        cli_create_key,
        cli_list_keys,
        cli_revoke_key,
        cli_rotate_key,
        password_hasher,
    )
    from otlp_gateway.store import open_store
    from otlp_gateway.telemetry.metrics import GatewayMetrics

    store = open_store(config.store, Path(config.data_dir), GatewayMetrics())
    await store.open()
    try:
        await store.migrate()
        hasher = password_hasher(config.api.key_hash)
        if args.keys_command == "create":
            key, secret = await cli_create_key(store, args.name, args.role, hasher)
            print(f"created {key.role} key {key.key_id}; the secret is shown only now:")
            print(secret)
        elif args.keys_command == "list":
            for key in await cli_list_keys(store):
                state = "revoked" if key.revoked_at else "active"
                created = f"{key.created_at:%Y-%m-%d %H:%M}"
                print(f"{key.key_id}\t{key.role}\t{state}\t{key.name}\tcreated {created}")
        elif args.keys_command == "rotate":
            print(await cli_rotate_key(store, args.key_id, hasher))
        elif args.keys_command == "revoke":
            await cli_revoke_key(store, args.key_id)
            print(f"revoked {args.key_id}")
    except (LookupError, KeyRevokedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    return 0
