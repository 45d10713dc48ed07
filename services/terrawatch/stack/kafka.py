"""Apache Kafka 4.x broker in KRaft mode (combined broker+controller), jars from Maven Central."""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path

from terrawatch.settings import Settings
from terrawatch.stack.process import ManagedProcess, port_open, wait_until

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


class Kafka:
    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.proc = ManagedProcess(self.name, settings.state_dir)
        self.home = settings.cache_dir / f"kafka-{settings.kafka_version}"
        self.data = settings.state_dir / "kafka"

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

    def _java(self, main: str, *args: str) -> list[str]:
        return ["java", "-Xms256m", "-Xmx768m", f"-Dlog4j2.configurationFile={self.data / 'log4j2.yaml'}",
                "-cp", str(self.home / "libs" / "*"), main, *args]

    def start(self) -> None:
        if self.proc.pid():
            return
        self.data.mkdir(parents=True, exist_ok=True)
        props = self.data / "server.properties"
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.s.kafka_controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.s.kafka_port},CONTROLLER://127.0.0.1:{self.s.kafka_controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.s.kafka_port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={self.data / 'logs'}",
            f"num.partitions={self.s.topic_partitions}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "",
        ]))
        (self.data / "log4j2.yaml").write_text(_LOG4J)
        if not (self.data / "logs" / "meta.properties").exists():
            cluster_id = new_cluster_id()
            subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)),
                check=True, capture_output=True,
            )
        self.proc.start(self._java("kafka.Kafka", str(props)))

    def wait(self, timeout: float = 90) -> None:
        wait_until(self.healthy, timeout, "kafka", self.proc.log_file)

    def healthy(self) -> bool:
        if not port_open(self.s.kafka_port):
            return False
        from terrawatch.ingest.topics import brokers_and_topics

        try:
            return brokers_and_topics(self.s)[0] > 0
        except Exception:  # noqa: BLE001 - any client error means not healthy yet
            return False

    def stop(self) -> bool:
        return self.proc.stop(timeout=30)


def kafka_home(settings: Settings) -> Path:
    return settings.cache_dir / f"kafka-{settings.kafka_version}"
