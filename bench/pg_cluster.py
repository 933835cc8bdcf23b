"""A throwaway PostgreSQL cluster for the store benchmark: ``initdb`` + ``pg_ctl`` in a temp dir, on a free
port on 127.0.0.1, default durability (fsync and synchronous_commit on, as in production). As root the
server commands run as the ``postgres`` user (initdb and postgres refuse root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness import free_port

PG_VERSION = "15"


def pg_bin_dir() -> Path:
    on_path = shutil.which("initdb")
    for directory in ([Path(on_path).resolve().parent] if on_path else []) + [
            Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")]:
        if all((directory / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    raise SystemExit(f"PostgreSQL server binaries not found; install postgresql-{PG_VERSION} or pass --dsn")


@dataclass
class BenchCluster:
    root: Path
    port: int
    bin_dir: Path
    as_postgres: bool

    @classmethod
    def start(cls) -> BenchCluster:
        as_postgres = os.geteuid() == 0
        cluster = cls(Path(tempfile.mkdtemp(prefix="bench-pg-")), free_port(), pg_bin_dir(), as_postgres)
        if as_postgres:
            shutil.chown(cluster.root, "postgres", "postgres")
        cluster._run("initdb", "-D", str(cluster.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                     "--no-locale", "--no-instructions")
        cluster._run("pg_ctl", "-D", str(cluster.data), "-l", str(cluster.root / "server.log"), "-w", "-o",
                     f"-p {cluster.port} -k {cluster.root} -c listen_addresses=127.0.0.1", "start")
        return cluster

    @property
    def data(self) -> Path:
        return self.root / "data"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def new_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.dsn(name)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode:
            raise RuntimeError(f"{tool} failed: {done.stdout}\n{done.stderr}")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
