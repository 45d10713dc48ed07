"""Apache Kafka 4.x in KRaft mode (each node broker+controller), jars from Maven Central: one node by default,
three (TERRAWATCH_KAFKA_BROKERS=3) with SASL/SCRAM for the multi-node fault suite."""

from __future__ import annotations

import base64
import secrets
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

from terrawatch.settings import Settings
from terrawatch_dev.stack.process import ManagedProcess, port_open, wait_until

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>terrawatch</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.25.4</version></dependency>
  </dependencies>
</project>
"""

_LOG4J = """Configuration:
  Appenders:
    Console: {name: STDOUT, PatternLayout: {pattern: "[%d] %p %m (%c)%n"}}
  Loggers:
    Root: {level: WARN, AppenderRef: [{ref: STDOUT}]}
    Logger:
      - {name: kafka.server.KafkaServer, level: INFO}
      - {name: kafka.server.BrokerServer, level: INFO}
"""


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding.

    Like Kafka's own ``Uuid.randomUuid`` it never starts with '-': StorageTool's argument parser
    would read ``-t -abc...`` as an unknown option and the format would fail (1 start in 64).
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def node_ports(settings: Settings, node: int) -> tuple[int, int]:
    """(client port, controller port) of local node ``node`` (1-based): node 1 on ``kafka_port`` and
    ``kafka_controller_port``, each further node 10 ports higher."""
    return settings.kafka_port + 10 * (node - 1), settings.kafka_controller_port + 10 * (node - 1)


def scram_enabled(settings: Settings) -> bool:
    """The local stack listens with SASL/SCRAM when the clients' settings say so."""
    return (settings.kafka_security_protocol.upper() == "SASL_PLAINTEXT"
            and settings.kafka_sasl_mechanism.upper().startswith("SCRAM-"))


class KafkaNode:
    """One KRaft node (broker and controller in one JVM) of the local cluster."""

    def __init__(self, settings: Settings, node: int, home: Path) -> None:
        self.s, self.node, self.home = settings, node, home
        suffix = "" if node == 1 else f"-{node}"
        self.proc = ManagedProcess(f"kafka{suffix}", settings.state_dir)
        self.data = settings.state_dir / f"kafka{suffix}"
        self.port, self.controller_port = node_ports(settings, node)

    def _java(self, main: str, *args: str) -> list[str]:
        heap = "-Xmx768m" if self.s.kafka_brokers == 1 else "-Xmx320m"  # 3 JVMs share a small machine
        return ["java", "-Xms128m", heap, f"-Dlog4j2.configurationFile={self.data / 'log4j2.yaml'}",
                "-cp", str(self.home / "libs" / "*"), main, *args]

    def _properties(self, admin_password: str) -> str:
        n = self.s.kafka_brokers
        rf, isr = min(3, n), min(2, n)
        voters = ",".join(f"{i}@127.0.0.1:{node_ports(self.s, i)[1]}" for i in range(1, n + 1))
        client = "SASL_PLAINTEXT" if scram_enabled(self.s) else "PLAINTEXT"
        lines = [
            "process.roles=broker,controller",
            f"node.id={self.node}",
            f"controller.quorum.voters={voters}",
            f"listeners={client}://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners={client}://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            f"inter.broker.listener.name={client}",
            f"listener.security.protocol.map={client}:{client},CONTROLLER:PLAINTEXT",
            f"log.dirs={self.data / 'logs'}",
            f"num.partitions={self.s.topic_partitions}",
            f"default.replication.factor={rf}",
            f"min.insync.replicas={isr}",
            f"offsets.topic.replication.factor={rf}",
            "offsets.topic.num.partitions=4",
            f"transaction.state.log.replication.factor={rf}",
            f"transaction.state.log.min.isr={isr}",
            f"share.coordinator.state.topic.replication.factor={rf}",
            f"share.coordinator.state.topic.min.isr={isr}",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "unclean.leader.election.enable=false",
        ]
        if scram_enabled(self.s):
            mech = self.s.kafka_sasl_mechanism.upper()
            lines += [
                f"sasl.enabled.mechanisms={mech}",
                f"sasl.mechanism.inter.broker.protocol={mech}",
                f"listener.name.sasl_plaintext.{mech.lower()}.sasl.jaas.config="
                f'org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" '
                f'password="{admin_password}";',
            ]
        return "\n".join(lines) + "\n"

    def start(self, cluster_id: str, admin_password: str) -> None:
        if self.proc.pid():
            return
        self.data.mkdir(parents=True, exist_ok=True)
        props = self.data / "server.properties"
        props.touch(mode=0o600)
        props.chmod(0o600)  # holds the inter-broker SCRAM password
        props.write_text(self._properties(admin_password))
        (self.data / "log4j2.yaml").write_text(_LOG4J)
        if not (self.data / "logs" / "meta.properties").exists():
            fmt = ["format", "-t", cluster_id, "-c", str(props)]
            if scram_enabled(self.s):
                mech = self.s.kafka_sasl_mechanism.upper()
                fmt += ["--add-scram", f"{mech}=[name=admin,password={admin_password}]"]
                if self.s.kafka_sasl_username:
                    fmt += ["--add-scram",
                            f"{mech}=[name={self.s.kafka_sasl_username},password={self.s.kafka_sasl_password}]"]
            subprocess.run(self._java("kafka.tools.StorageTool", *fmt), check=True, capture_output=True)
        self.proc.start(self._java("kafka.Kafka", str(props)))

    def stop(self, sig: int = signal.SIGTERM) -> bool:
        return self.proc.stop(sig=sig, timeout=30)


class Kafka:
    """The local Kafka: ``kafka_brokers`` KRaft nodes (1 by default; 3 = the multi-node mode of the fault
    suite), each broker and controller in one JVM on its own ports (:func:`node_ports`). With
    ``TERRAWATCH_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT`` and a SCRAM mechanism the client listener accepts
    only SCRAM-authenticated clients: the user ``TERRAWATCH_KAFKA_SASL_USERNAME`` is created at format time,
    brokers talk to each other as ``admin`` with a random password kept in the state dir (mode 0600)."""

    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        if settings.kafka_brokers < 1:
            raise ValueError("TERRAWATCH_KAFKA_BROKERS must be at least 1")
        self.s = settings
        self.home = settings.cache_dir / f"kafka-{settings.kafka_version}"
        self.nodes = [KafkaNode(settings, i, self.home) for i in range(1, settings.kafka_brokers + 1)]
        self.proc = self.nodes[0].proc
        self.data = self.nodes[0].data

    def install(self) -> None:
        libs = self.home / "libs"
        if libs.exists() and any(libs.glob("kafka_2.13-*.jar")):
            return
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "pom.xml").write_text(_POM.format(version=self.s.kafka_version))
        tmp = self.home / "libs.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(
            ["mvn", "-q", "-B", "-f", str(self.home / "pom.xml"), "dependency:copy-dependencies",
             f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"],
            check=True,
        )
        tmp.rename(libs)

    def _secret(self, name: str, make) -> str:
        """A value kept in ``<state>/kafka-cluster/<name>`` (mode 0600): the same for every node and restart."""
        f = self.s.state_dir / "kafka-cluster" / name
        if not f.exists():
            f.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            f.touch(mode=0o600)
            f.write_text(make())
        return f.read_text().strip()

    def start(self) -> None:
        cluster_id = self._secret("cluster-id", new_cluster_id)
        admin_password = self._secret("admin-password", lambda: secrets.token_urlsafe(24))
        for node in self.nodes:
            node.start(cluster_id, admin_password)

    def start_node(self, node: int) -> None:
        """(Re)start one node, e.g. after a fault test killed it."""
        self.nodes[node - 1].start(self._secret("cluster-id", new_cluster_id),
                                   self._secret("admin-password", lambda: secrets.token_urlsafe(24)))

    def wait(self, timeout: float = 120) -> None:
        wait_until(self.healthy, timeout, "kafka", self.proc.log_file)

    def healthy(self) -> bool:
        """Every node's port answers and the cluster reports all of its brokers."""
        if not all(port_open(n.port) for n in self.nodes):
            return False
        from terrawatch.ingest.topics import brokers_and_topics

        try:
            return brokers_and_topics(self.s)[0] >= len(self.nodes)
        except Exception:  # noqa: BLE001 - any client error means not healthy yet
            return False

    def stop(self) -> bool:
        """Stop every node at once (one by one, the last nodes would wait for a quorum that is leaving)."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            return any(list(pool.map(KafkaNode.stop, self.nodes)))


def kafka_home(settings: Settings) -> Path:
    return settings.cache_dir / f"kafka-{settings.kafka_version}"
