"""The local stack as a stranger on the host or the network meets it (issue 25, findings 1 and 2).

- every process of the stack, and a pipeline worker (a Ray driver), listens on loopback only;
- a Ray driver without the cluster's token, or with a wrong one, is refused (and one with it is not);
- PostgreSQL refuses a login without a password for every role, over TCP and over the socket, and a
  wrong password; every login role has a SCRAM verifier; ``pg_hba.conf`` has no ``trust``;
- the socket directory is not world-writable; the secrets are owner-only;
- README's ``psql`` command works as written against the stack.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from terrawatch.settings import REPO_ROOT
from terrawatch_dev.stack.postgres import SERVICE_ROLES, SUPERUSER
from terrawatch_dev.stack.process import port_open
from tests.integration.helpers import isolated, start_worker

pytestmark = pytest.mark.integration

ALL_ROLES = (SUPERUSER, *SERVICE_ROLES)


def _loopback(host: str) -> bool:
    ip = ipaddress.ip_address(host.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _bound_sockets(procs: list[psutil.Process]) -> list[tuple[str, int, str, str]]:
    """(process name, pid, address:port, tcp/udp) of every listening TCP and bound UDP socket."""
    out = []
    for p in procs:
        try:
            name = p.name()
            conns = p.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        for c in conns:
            tcp = c.type == 1  # SOCK_STREAM
            if (tcp and c.status == psutil.CONN_LISTEN) or (not tcp and not c.raddr):
                out.append((name, p.pid, f"{c.laddr.ip}:{c.laddr.port}", "tcp" if tcp else "udp"))
    return out


def _stack_processes(state_dir: Path) -> list[psutil.Process]:
    procs = []
    for pid_file in sorted((state_dir / "pids").glob("*.pid")):
        try:
            procs += _tree(int(pid_file.read_text().strip()))
        except ValueError:
            continue
    return procs


def test_every_process_of_the_stack_and_a_worker_listens_on_loopback_only(stack, tmp_path):
    s = isolated(stack.settings, "sockets")
    worker = start_worker(s, tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not port_open(s.metrics_port):
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(1)
        assert port_open(s.metrics_port), (tmp_path / "worker.log").read_text()[-3000:]
        ray_ports = range(s.ray_min_worker_port, s.ray_min_worker_port + 1000)

        def joined() -> bool:  # the worker is a Ray driver and its tile actors run in Ray workers
            driver = [x for x in _bound_sockets(_tree(worker.pid)) if int(x[2].rsplit(":", 1)[1]) in ray_ports]
            actors = [x for x in _bound_sockets(_stack_processes(s.state_dir))
                      if x[0].startswith("ray::") and int(x[2].rsplit(":", 1)[1]) in ray_ports]
            return bool(driver and actors)

        while time.monotonic() < deadline and not joined():
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(2)
        assert joined(), (tmp_path / "worker.log").read_text()[-3000:]
        stack_procs = _stack_processes(s.state_dir)
        names = {p.name() for p in stack_procs}
        # The walk reaches every service and Ray's own processes (GCS, raylet, agents, Ray workers).
        assert {"postgres", "gcs_server", "raylet", "tritonserver", "java"} <= names, names
        assert any(n.startswith("ray::") for n in names), names
        sockets = _bound_sockets(stack_procs + _tree(worker.pid))
    finally:
        worker.terminate()
        worker.wait(60)
    table = "\n".join(f"{n:28} {pid:>7} {proto} {addr}" for n, pid, addr, proto in sorted(sockets))
    print(f"listening sockets of the stack and a worker ({len(sockets)}):\n{table}")
    assert len(sockets) >= 10, table  # GCS, raylet x2, client server, agents, Triton x3, Kafka x2, PostgreSQL
    ports = {int(addr.rsplit(":", 1)[1]) for _, _, addr, _ in sockets}
    assert {s.pg_port, s.kafka_port, s.triton_grpc_port, s.ray_port, s.ray_port + 1, s.ray_port + 2,
            s.metrics_port} <= ports, table
    outside = [x for x in sockets if not _loopback(x[2].rsplit(":", 1)[0])]
    assert not outside, f"listening outside loopback: {outside}\n{table}"


def _driver(env: dict[str, str], address: str) -> subprocess.CompletedProcess:
    code = ("import ray\n"
            f"ray.init(address={address!r}, log_to_driver=False)\n"
            "print('RESULT', ray.get(ray.remote(lambda: 6 * 7).remote()))\n")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)


def test_a_ray_driver_needs_the_token(stack, tmp_path):
    s = stack.settings
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    base.update(RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")  # reach 127.0.0.1 itself
    token = s.ray_token_file.read_text().strip()
    assert len(token) >= 64
    ok = _driver({**base, **s.ray_driver_env}, s.ray)
    assert "RESULT 42" in ok.stdout, ok.stderr[-3000:]

    without = _driver({**base, "RAY_AUTH_MODE": "disabled"}, s.ray)
    assert without.returncode != 0 and "RESULT" not in without.stdout
    assert re.search(r"Unauthenticated|InvalidAuthToken|[Aa]uthentication", without.stderr), without.stderr[-3000:]

    wrong = tmp_path / "wrong-token"
    wrong.write_text("0" * 64)
    wrong.chmod(0o600)
    bad = _driver({**base, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(wrong)}, s.ray)
    assert bad.returncode != 0 and "RESULT" not in bad.stdout
    assert re.search(r"Unauthenticated|InvalidAuthToken|[Aa]uthentication", bad.stderr), bad.stderr[-3000:]

    # The Ray client server (ray://) too.
    client = _driver({**base, "RAY_AUTH_MODE": "disabled"}, f"ray://127.0.0.1:{s.ray_port + 1}")
    assert client.returncode != 0 and "RESULT" not in client.stdout, client.stdout


def _psql(role: str, host: str, port: int, passfile: str = "/dev/null", password: str | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = passfile
    if password is not None:
        env["PGPASSWORD"] = password
    return subprocess.run(["psql", "-w", "-h", host, "-p", str(port), "-U", role, "-d", "terrawatch",
                           "-tAc", "select current_user"], env=env, capture_output=True, text=True, timeout=30)


def test_postgresql_refuses_every_login_without_its_password(stack):
    s = stack.settings
    sock = str(stack.postgres.sock)
    for role in ALL_ROLES:
        for host in ("127.0.0.1", sock):
            res = _psql(role, host, s.pg_port)
            assert res.returncode != 0 and "no password supplied" in res.stderr, (role, host, res.stderr)
            res = _psql(role, host, s.pg_port, password="wrong")
            assert res.returncode != 0 and "password authentication failed" in res.stderr, (role, host, res.stderr)
    # The service roles log in with the stack's password file (which holds no superuser password).
    for role in SERVICE_ROLES:
        for host in ("127.0.0.1", sock):
            res = _psql(role, host, s.pg_port, passfile=str(s.pg_passfile))
            assert res.returncode == 0 and res.stdout.strip() == role, (role, host, res.stderr)
    res = _psql(SUPERUSER, "127.0.0.1", s.pg_port, passfile=str(s.pg_passfile))
    assert res.returncode != 0, "the services' password file must not log in as postgres"
    # Every role that can log in has a SCRAM verifier; none has a plain or md5 password or none at all.
    res = stack.postgres._psql("select rolname from pg_authid where rolcanlogin and "
                               "(rolpassword is null or rolpassword not like 'SCRAM-SHA-256$%')")
    assert res.returncode == 0 and res.stdout.strip() == "", res.stdout + res.stderr


def test_no_trust_socket_dir_private_secrets_owner_only(stack):
    s = stack.settings
    hba = (stack.postgres.data / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert rules and all(r[-1] == "scram-sha-256" for r in rules), hba
    assert "trust" not in " ".join(" ".join(r) for r in rules)
    sock_mode = stat.S_IMODE(stack.postgres.sock.stat().st_mode)
    assert sock_mode & 0o077 == 0, oct(sock_mode)  # not even group or world readable, let alone writable
    assert stat.S_IMODE(s.secrets_dir.stat().st_mode) == 0o700
    # Ray's unix sockets take no token: its temp dir (which Ray makes 0777) lies in a folder of the owner's.
    assert stack.ray.temp_dir.parent == stack.ray.temp_root
    assert stat.S_IMODE(stack.ray.temp_root.stat().st_mode) == 0o700
    assert list(stack.ray.temp_dir.glob("session_*/sockets/raylet")), "the head's sockets are not in there"
    files = [s.pg_passfile, stack.postgres.superuser_passfile, s.ray_token_file]
    for f in files:
        st = f.stat()
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid(), (f, oct(st.st_mode))
    # The URLs the processes use carry no password: it stays in the password file.
    for url in (s.db_url, s.worker_db_url, s.api_read_db_url, s.api_write_db_url):
        assert re.match(r"postgresql\+psycopg://[a-z_]+@127\.0\.0\.1:\d+/terrawatch\?passfile=", url), url


def test_readme_psql_command_works_as_written(stack):
    s = stack.settings
    readme = (REPO_ROOT / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith("psql "))
    cmd = line.split("  #")[0].replace(":15432/", f":{s.pg_port}/").replace(".terrawatch/", f"{s.state_dir}/")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    res = subprocess.run(shlex.split(cmd) + ["-w"], env=env, capture_output=True, text=True, timeout=30,
                         cwd=REPO_ROOT)
    assert res.returncode == 0, (cmd, res.stderr)
    assert "hazard" in res.stdout, res.stdout
