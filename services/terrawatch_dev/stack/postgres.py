"""A throwaway PostgreSQL 15 + PostGIS 3 cluster from Debian packages.

Every login needs a password (``scram-sha-256`` on the socket and on 127.0.0.1; no ``trust`` line).
The passwords are generated when the stack is first started and kept in the state dir's ``secrets/``
folder (0700, files 0600): ``pgpass`` (a libpq password file) holds the service roles' and is what the
local-stack URLs name (``?passfile=``); ``pgpass-postgres`` holds the superuser's, which only this module
uses, to create the roles, the database and the ``postgis`` extension. The server only ever receives SCRAM
verifiers, never a password. The socket directory is the ``postgres`` user's, mode 0700.

A cluster made by an older version (``trust`` everywhere, no passwords) is upgraded in place on the next
start: the superuser gets its password in single-user mode before the server starts (or over the socket
if it is running), the roles theirs, and ``pg_hba.conf`` is replaced.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

from terrawatch.settings import Settings
from terrawatch_dev.stack.process import ManagedProcess, wait_until, write_secret

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "postgres"
SERVICE_ROLES = ("terrawatch", "terrawatch_worker", "terrawatch_api_read", "terrawatch_api_write")
POSTGIS_CONTROL = Path("/usr/share/postgresql/15/extension/postgis.control")
HBA = """\
# terrawatch local stack (services/terrawatch_dev/stack/postgres.py): a password for every role, on the
# socket and on loopback; nothing else. Rewritten at each start.
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""


def _apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env)


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier of ``password`` (RFC 5802/7677), so the server never sees it."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _pgpass_escape(field: str) -> str:
    return field.replace("\\", "\\\\").replace(":", "\\:")


def read_pgpass(path: Path) -> dict[str, str]:
    """``{role: password}`` of a password file written by :func:`pgpass_text`."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        fields, cur, esc = [], "", False
        for ch in line:
            if esc:
                cur, esc = cur + ch, False
            elif ch == "\\":
                esc = True
            elif ch == ":":
                fields.append(cur)
                cur = ""
            else:
                cur += ch
        fields.append(cur)
        if len(fields) == 5 and not line.startswith("#"):
            out.setdefault(fields[3], fields[4])
    return out


def pgpass_text(passwords: dict[str, str], port: int, socket_dir: Path) -> str:
    """libpq password file lines: each role on 127.0.0.1, localhost and the socket directory, this port only."""
    hosts = ("127.0.0.1", "localhost", str(socket_dir))
    return "".join(f"{_pgpass_escape(h)}:{port}:*:{role}:{_pgpass_escape(pw)}\n"
                   for role, pw in passwords.items() for h in hosts)


class Postgres:
    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.proc = ManagedProcess(self.name, settings.state_dir)
        self.data = settings.state_dir.absolute() / "pg" / "data"
        self.sock = settings.state_dir.absolute() / "pg" / "sock"
        self.superuser_passfile = settings.secrets_dir / "pgpass-postgres"
        self.user = "postgres" if os.geteuid() == 0 else None

    def install(self) -> None:
        if not (PG_BIN / "postgres").exists() or not POSTGIS_CONTROL.exists():
            _apt_install("postgresql-15", "postgresql-15-postgis-3")

    def _chown(self, path: Path) -> None:
        if self.user:
            shutil.chown(path, self.user, self.user)

    # -- secrets ------------------------------------------------------------------------------------
    def _ensure_passwords(self) -> tuple[dict[str, str], bool]:
        """The passwords of the superuser and the service roles (generated where missing) written to the
        two password files; and whether the superuser's was generated just now."""
        su = read_pgpass(self.superuser_passfile).get(SUPERUSER)
        new_su = su is None
        su = su or secrets.token_urlsafe(32)
        known = read_pgpass(self.s.pg_passfile)
        roles = {role: known.get(role) or secrets.token_urlsafe(32) for role in SERVICE_ROLES}
        write_secret(self.superuser_passfile, pgpass_text({SUPERUSER: su}, self.s.pg_port, self.sock))
        write_secret(self.s.pg_passfile, pgpass_text(roles, self.s.pg_port, self.sock))
        return {SUPERUSER: su, **roles}, new_su

    def _hba_file(self) -> Path:
        return self.data / "pg_hba.conf"

    def _hba_current(self) -> bool:
        try:
            return self._hba_file().read_text() == HBA
        except FileNotFoundError:
            return False

    def _write_hba(self) -> None:
        hba = self._hba_file()
        hba.write_text(HBA)
        os.chmod(hba, 0o600)
        self._chown(hba)

    def _as_postgres_file(self, name: str, text: str) -> Path:
        """A file only the server's user can read (for initdb --pwfile); the caller removes it."""
        path = self.data.parent / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        self._chown(path)
        return path

    def _set_superuser_password_offline(self, password: str) -> None:
        """Give ``postgres`` its password in single-user mode (server stopped; no connection, no trust)."""
        res = subprocess.run(
            [str(PG_BIN / "postgres"), "--single", "-D", str(self.data), SUPERUSER],
            input=f"ALTER ROLE {SUPERUSER} PASSWORD '{scram_verifier(password)}';\n",
            capture_output=True, text=True, user=self.user, timeout=120,
        )
        if res.returncode:
            raise RuntimeError(f"setting the postgres password in single-user mode failed: {res.stderr.strip()}")

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        passwords, new_superuser_password = self._ensure_passwords()
        if self.proc.pid():
            return  # wait() brings a running cluster's passwords and pg_hba.conf up to date
        pg_root = self.data.parent
        pg_root.mkdir(parents=True, exist_ok=True)
        if self.user:  # the postgres user must be able to traverse the state dir
            st = self.s.state_dir.stat().st_mode
            os.chmod(self.s.state_dir, st | 0o711)
        self.sock.mkdir(parents=True, exist_ok=True)
        self._chown(pg_root)
        self._chown(self.sock)
        os.chmod(self.sock, 0o700)  # only the server's user (and root) reach the socket
        if not (self.data / "PG_VERSION").exists():
            pwfile = self._as_postgres_file(".initdb-pw", passwords[SUPERUSER] + "\n")
            try:
                res = subprocess.run(
                    [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth=scram-sha-256",
                     f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync"],
                    capture_output=True, text=True, user=self.user,
                )
            finally:
                pwfile.unlink(missing_ok=True)
            if res.returncode:
                raise RuntimeError(f"initdb failed: {res.stderr.strip()}")
        elif new_superuser_password or not self._hba_current():
            # A cluster of an older version (trust, no passwords) or whose password file was lost.
            self._set_superuser_password_offline(passwords[SUPERUSER])
        self._write_hba()
        self.proc.start(
            [str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.s.pg_port),
             "-k", str(self.sock), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_permissions=0700",
             "-c", "password_encryption=scram-sha-256", "-c", "fsync=on",
             "-c", "max_connections=200", "-c", "shared_buffers=128MB"],
            user=self.user,
        )

    def _psql(self, sql: str, db: str = "postgres") -> subprocess.CompletedProcess:
        """``sql`` as the superuser over the socket (password from its own file; SQL on stdin, not argv)."""
        return subprocess.run(
            ["psql", "-h", str(self.sock), "-p", str(self.s.pg_port), "-U", SUPERUSER, "-d", db, "-w",
             "-v", "ON_ERROR_STOP=1", "-tA", "-f", "-"],
            input=sql, capture_output=True, text=True,
            env={**os.environ, "PGPASSFILE": str(self.superuser_passfile)},
        )

    def wait(self, timeout: float = 60) -> None:
        wait_until(lambda: self._psql("select 1").returncode == 0, timeout, "postgres", self.proc.log_file)
        passwords, _ = self._ensure_passwords()
        # Least privilege: the schema owner and the service roles log in without superuser rights
        # (terrawatch.store.grants); the superuser only creates them and the postgis extension.
        for role in SERVICE_ROLES:
            if "1" not in self._psql(f"select 1 from pg_roles where rolname='{role}'").stdout:
                self._psql(f"create role {role} login nosuperuser nocreatedb nocreaterole").check_returncode()
            else:  # clusters made before the roles were split had terrawatch as a superuser
                self._psql(f"alter role {role} nosuperuser nocreatedb nocreaterole").check_returncode()
        # (Again) the passwords of the files, so a lost or older file is repaired; verifiers only.
        self._psql("".join(f"alter role {role} password '{scram_verifier(pw)}';\n"
                           for role, pw in passwords.items())).check_returncode()
        if "1" not in self._psql("select 1 from pg_database where datname='terrawatch'").stdout:
            self._psql("create database terrawatch owner terrawatch").check_returncode()
        self._psql("create extension if not exists postgis", db="terrawatch").check_returncode()
        if not self._hba_current():  # a server of an older version still running with trust
            self._write_hba()
            self._psql("select pg_reload_conf()").check_returncode()

    def healthy(self) -> bool:
        return self.proc.pid() is not None and self._psql("select postgis_version()", "terrawatch").returncode == 0

    def stop(self) -> bool:
        return self.proc.stop(sig=signal.SIGINT, timeout=30)
