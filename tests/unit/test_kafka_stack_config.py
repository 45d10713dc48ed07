"""The local Kafka's node configuration (stack/kafka.py), one node by default and three in the multi-node
mode, rendered without starting Java."""

from __future__ import annotations

from pathlib import Path

from terrawatch.settings import Settings
from terrawatch_dev.stack.kafka import Kafka, KafkaNode, node_ports, scram_enabled

SCRAM = dict(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-512",
             kafka_sasl_username="terrawatch", kafka_sasl_password="pw")


def _props(s: Settings, node: int) -> dict[str, str]:
    text = KafkaNode(s, node, Path("/nonexistent"))._properties("admin-secret")
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_single_node_default_is_plaintext_and_unreplicated(tmp_path):
    s = Settings(state_dir=tmp_path)
    assert s.bootstrap == "127.0.0.1:19092" and not scram_enabled(s)
    p = _props(s, 1)
    assert p["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert p["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert (p["default.replication.factor"], p["min.insync.replicas"], p["offsets.topic.replication.factor"]) == (
        "1", "1", "1")
    assert not any(k.startswith("sasl.") for k in p)
    assert [n.proc.name for n in Kafka(s).nodes] == ["kafka"]


def test_three_nodes_with_scram_replicate_and_authenticate(tmp_path):
    s = Settings(state_dir=tmp_path, kafka_brokers=3, **SCRAM)
    assert [node_ports(s, i) for i in (1, 2, 3)] == [(19092, 19093), (19102, 19103), (19112, 19113)]
    assert s.bootstrap == "127.0.0.1:19092,127.0.0.1:19102,127.0.0.1:19112"
    assert Settings(kafka_brokers=3, kafka_bootstrap="k:9092").bootstrap == "k:9092"
    p = _props(s, 2)
    assert p["node.id"] == "2"
    assert p["listeners"] == "SASL_PLAINTEXT://127.0.0.1:19102,CONTROLLER://127.0.0.1:19103"
    assert p["inter.broker.listener.name"] == "SASL_PLAINTEXT"
    assert p["controller.quorum.voters"] == "1@127.0.0.1:19093,2@127.0.0.1:19103,3@127.0.0.1:19113"
    assert (p["default.replication.factor"], p["min.insync.replicas"], p["offsets.topic.replication.factor"],
            p["transaction.state.log.min.isr"]) == ("3", "2", "3", "2")
    assert p["unclean.leader.election.enable"] == "false"
    assert p["sasl.enabled.mechanisms"] == p["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert 'username="admin" password="admin-secret"' in p["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]
    assert [n.proc.name for n in Kafka(s).nodes] == ["kafka", "kafka-2", "kafka-3"]


def test_cluster_secrets_are_private_and_stable(tmp_path):
    k = Kafka(Settings(state_dir=tmp_path, kafka_brokers=3, **SCRAM))
    first = k._secret("admin-password", lambda: "generated")
    assert k._secret("admin-password", lambda: "other") == first == "generated"
    f = tmp_path / "kafka-cluster" / "admin-password"
    assert f.stat().st_mode & 0o077 == 0 and f.parent.stat().st_mode & 0o077 == 0
