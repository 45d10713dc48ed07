"""A throwaway PostgreSQL 15 + PostGIS 3 cluster from Debian packages."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from terrawatch.settings import Settings
from terrawatch.stack.process import ManagedProcess, wait_until

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SERVICE_ROLES = ("terrawatch", "terrawatch_worker", "terrawatch_api_read", "terrawatch_api_write")
POSTGIS_CONTROL = Path("/usr/share/postgresql/15/extension/postgis.control")


def _apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env)


class Postgres:
    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.proc = ManagedProcess(self.name, settings.state_dir)
        self.data = settings.state_dir / "pg" / "data"
        self.sock = settings.state_dir / "pg" / "sock"
        self.user = "postgres" if os.geteuid() == 0 else None

    def install(self) -> None:
        if not (PG_BIN / "postgres").exists() or not POSTGIS_CONTROL.exists():
            _apt_install("postgresql-15", "postgresql-15-postgis-3")

    def _chown(self, path: Path) -> None:
        if self.user:
            shutil.chown(path, self.user, self.user)

    def start(self) -> None:
        if self.proc.pid():
            return
        pg_root = self.data.parent
        pg_root.mkdir(parents=True, exist_ok=True)
        if self.user:  # the postgres user must be able to traverse the state dir
            st = self.s.state_dir.stat().st_mode
            os.chmod(self.s.state_dir, st | 0o711)
        self.sock.mkdir(parents=True, exist_ok=True)
        self._chown(pg_root)
        self._chown(self.sock)
        if not (self.data / "PG_VERSION").exists():
            res = subprocess.run(
                [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                 "--no-sync"],
                capture_output=True, text=True, user=self.user,
            )
            if res.returncode:
                raise RuntimeError(f"initdb failed: {res.stderr.strip()}")
        self.proc.start(
            [str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.s.pg_port),
             "-k", str(self.sock), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=on",
             "-c", "max_connections=200", "-c", "shared_buffers=128MB"],
            user=self.user,
        )

    def _psql(self, sql: str, db: str = "postgres") -> subprocess.CompletedProcess:
        return subprocess.run(
            ["psql", "-h", str(self.sock), "-p", str(self.s.pg_port), "-U", "postgres", "-d", db,
             "-v", "ON_ERROR_STOP=1", "-tAc", sql],
            capture_output=True, text=True,
        )

    def wait(self, timeout: float = 60) -> None:
        wait_until(lambda: self._psql("select 1").returncode == 0, timeout, "postgres", self.proc.log_file)
        # Least privilege: the schema owner and the service roles log in without superuser rights
        # (terrawatch.store.grants); the superuser only creates them and the postgis extension.
        for role in SERVICE_ROLES:
            if "1" not in self._psql(f"select 1 from pg_roles where rolname='{role}'").stdout:
                self._psql(f"create role {role} login nosuperuser nocreatedb nocreaterole").check_returncode()
            else:  # clusters made before the roles were split had terrawatch as a superuser
                self._psql(f"alter role {role} nosuperuser nocreatedb nocreaterole").check_returncode()
        if "1" not in self._psql("select 1 from pg_database where datname='terrawatch'").stdout:
            self._psql("create database terrawatch owner terrawatch").check_returncode()
        self._psql("create extension if not exists postgis", db="terrawatch").check_returncode()

    def healthy(self) -> bool:
        return self.proc.pid() is not None and self._psql("select postgis_version()", "terrawatch").returncode == 0

    def stop(self) -> bool:
        return self.proc.stop(sig=signal.SIGINT, timeout=30)
