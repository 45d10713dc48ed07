"""Kafka client configuration: one function (ingest/kafka_config.client_config) builds every client's
settings, so security settings reach every producer, consumer and admin client; topic durability rules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from terrawatch.ingest.kafka_config import KafkaConfigError, client_config, redacted
from terrawatch.ingest.topics import Durability, durability, unwritable, weaknesses
from terrawatch.settings import REPO_ROOT, Settings
from tests.import_graph import parse

CLIENTS = {"Consumer", "Producer", "AdminClient"}


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _is_client_config(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Call) and _name(node.func) == "client_config"


def constructions(path: Path) -> list[tuple[int, bool]]:
    """(line, built by client_config) of each Kafka client constructed in ``path``: its first argument is a
    ``client_config(...)`` call, or a name assigned one in the innermost enclosing function."""
    if not any(c in path.read_text() for c in CLIENTS):  # no client named, none built: skip the walk
        return []
    tree = parse(path)
    scope: dict[ast.AST, ast.AST] = {}

    def visit(node: ast.AST, fn: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            scope[child] = fn
            visit(child, child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else fn)

    visit(tree, tree)
    out = []
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and _name(call.func) in CLIENTS):
            continue
        fn = scope[call]
        assigned = {t.id for n in ast.walk(fn) if isinstance(n, ast.Assign) and scope.get(n) is fn
                    and _is_client_config(n.value) for t in n.targets if isinstance(t, ast.Name)}
        arg = call.args[0] if call.args else None
        out.append((call.lineno, _is_client_config(arg) or (isinstance(arg, ast.Name) and arg.id in assigned)))
    return sorted(out)


def _sources() -> list[Path]:
    roots = [REPO_ROOT / "services", REPO_ROOT / "bench", REPO_ROOT / "tests"]
    return [p for r in roots for p in r.rglob("*.py") if ".venv" not in p.parts]


def test_every_kafka_client_is_built_by_client_config():
    sites, offenders = 0, []
    for p in _sources():
        for line, ok in constructions(p):
            sites += 1
            if not ok:
                offenders.append(f"{p.relative_to(REPO_ROOT)}:{line}")
    assert offenders == [], f"Kafka clients built without ingest.kafka_config.client_config: {offenders}"
    assert sites >= 8, f"only {sites} client constructions found: the walk is broken"


def test_the_boundary_walk_catches_a_client_built_by_hand(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from confluent_kafka import Consumer, Producer\n"
                 "def a(s):\n    return Consumer({'bootstrap.servers': s.bootstrap})\n"
                 "def b(s):\n    conf = client_config(s)\n    return Producer(conf)\n"
                 "def c(s):\n    conf = {'bootstrap.servers': 'x'}\n    return Producer(conf)\n")
    assert constructions(f) == [(3, False), (6, True), (9, False)]


def test_plaintext_local_stack_has_only_bootstrap():
    s = Settings(kafka_bootstrap="k:9092")
    assert client_config(s, **{"group.id": "g"}) == {"bootstrap.servers": "k:9092", "group.id": "g"}


def test_scram_over_tls_reaches_the_client():
    s = Settings(kafka_bootstrap="k:9093", kafka_security_protocol="sasl_ssl", kafka_sasl_mechanism="SCRAM-SHA-512",
                 kafka_sasl_username="tw", kafka_sasl_password="pw", kafka_ssl_ca_location="/tls/ca.crt",
                 kafka_config='{"ssl.endpoint.identification.algorithm": "https", "socket.timeout.ms": 7000}')
    conf = client_config(s, **{"acks": "all"})
    assert conf == {"bootstrap.servers": "k:9093", "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                    "sasl.username": "tw", "sasl.password": "pw", "ssl.ca.location": "/tls/ca.crt",
                    "ssl.endpoint.identification.algorithm": "https", "socket.timeout.ms": 7000, "acks": "all"}
    assert redacted(conf)["sasl.password"] == "***" and redacted(conf)["ssl.ca.location"] == "/tls/ca.crt"


def test_the_clients_own_settings_win_over_extra_config():
    s = Settings(kafka_config='{"socket.timeout.ms": 7000}')
    assert client_config(s, **{"socket.timeout.ms": 5000})["socket.timeout.ms"] == 5000


@pytest.mark.parametrize("kw, match", [
    ({"kafka_security_protocol": "TLS"}, "use one of"),
    ({"kafka_sasl_username": "u", "kafka_sasl_password": "p"}, "would not be sent"),
    ({"kafka_security_protocol": "SSL", "kafka_sasl_mechanism": "PLAIN"}, "needs"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_ssl_ca_location": "/ca"}, "SSL or SASL_SSL"),
    ({"kafka_config": "{not json"}, "not JSON"),
    ({"kafka_config": "[1]"}, "JSON object"),
    ({"kafka_config": '{"acks": "1"}'}, "may not set acks"),
    ({"kafka_config": '{"bootstrap.servers": "evil:9092"}'}, "may not set bootstrap.servers"),
    ({"kafka_config": '{"x": {"y": 1}}'}, "scalars"),
])
def test_contradictory_security_settings_are_refused(kw, match):
    with pytest.raises(KafkaConfigError, match=match):
        client_config(Settings(**kw))


@pytest.mark.parametrize("brokers, rf, isr", [(1, 1, 1), (2, 2, 2), (3, 3, 2), (5, 3, 2)])
def test_default_durability_follows_the_cluster_size(brokers, rf, isr):
    assert durability(Settings(), brokers) == Durability(rf, isr)


def test_configured_durability_wins_and_must_be_satisfiable():
    assert durability(Settings(kafka_replication_factor=3, kafka_min_insync_replicas=2), 1) == Durability(3, 2)
    with pytest.raises(ValueError, match="exceeds the replication factor"):
        durability(Settings(kafka_replication_factor=1, kafka_min_insync_replicas=2), 3)


def test_weaker_topics_are_named_with_what_is_missing():
    want = Durability(3, 2)
    assert weaknesses("t", {0: 3, 1: 3}, 2, want) == []
    assert weaknesses("t", {0: 3, 1: 4}, 3, want) == []
    assert weaknesses("t", {0: 1, 1: 3, 2: 1}, 1, want) == [
        "t: replication factor 1 < 3 on partition(s) 0,2", "t: min.insync.replicas 1 < 2"]
    assert weaknesses("t", {0: 3}, None, want) == ["t: min.insync.replicas could not be read"]


def test_partitions_below_min_insync_are_reported_unwritable():
    assert unwritable("t", {0: 3, 1: 2}, 2) == []
    assert unwritable("t", {0: 1, 1: 2, 2: 1}, 2) == [
        "t: partition(s) 0,2 have 1 in-sync replica(s) < min.insync.replicas 2: writes are refused"]
