"""deploy/compose.yaml is valid against the compose-spec JSON schema and self-consistent.

Schema validation only: no Docker engine exists where the tests run.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def validator():
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_compose_file_matches_compose_spec(compose, validator):
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert [f"{list(e.path)}: {e.message}" for e in errors] == []


def test_schema_rejects_a_broken_service(compose, validator):
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["restart_policy"] = "always"  # not a compose key
    broken["services"]["kafka"]["depends_on"] = {"postgis": {"condition": "when_ready"}}
    assert len(list(validator.iter_errors(broken))) >= 2


def test_required_services_and_profiles(compose):
    services = compose["services"]
    for name in ("kafka", "postgis", "ray-head", "ray-worker", "consumer", "dispatcher", "api",
                 "prometheus", "grafana"):
        assert name in services, name
    assert services["triton-cpu"]["profiles"] == ["cpu"]
    assert services["triton-gpu"]["profiles"] == ["gpu"]
    gpu = services["triton-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert "KAFKA_PROCESS_ROLES" in services["kafka"]["environment"]  # KRaft, no ZooKeeper
    assert not any("zookeeper" in s.get("image", "") for s in services.values())


def test_references_resolve(compose):
    services = compose["services"]
    volumes = set(compose.get("volumes", {}))
    for name, svc in services.items():
        deps = svc.get("depends_on", [])
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in services, f"{name} depends on unknown service {dep}"
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} uses undeclared volume {source}"
        build = svc.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


def test_prometheus_scrapes_compose_hosts(compose):
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    hosts = set(compose["services"])
    for svc in compose["services"].values():
        hosts |= set(svc.get("networks", {}).get("default", {}).get("aliases", []))
    jobs = {}
    for job in prom["scrape_configs"]:
        for sc in job["static_configs"]:
            for target in sc["targets"]:
                host = target.split(":")[0]
                assert host in hosts | {"localhost"}, f"{job['job_name']} scrapes unknown host {host}"
        jobs[job["job_name"]] = job
    assert {"terrawatch-consumer", "terrawatch-dispatcher", "terrawatch-api", "triton"} <= set(jobs)


def test_no_default_secrets_and_ray_token_auth():
    """Secrets are required variables (``${VAR:?...}``), never defaults anyone can guess; Ray needs its token."""
    import re

    text = (DEPLOY / "compose.yaml").read_text()
    for var in ("POSTGRES_PASSWORD", "RAY_AUTH_TOKEN", "GRAFANA_ADMIN_PASSWORD"):
        uses = re.findall(r"\$\{" + var + r"([^}]*)\}", text)
        assert uses, var
        assert all(u.startswith(":?") for u in uses), f"{var} has a default: {uses}"
    env = yaml.safe_load(text)["x-terrawatch-env"]
    assert env["RAY_AUTH_MODE"] == "token"
    pg = yaml.safe_load(text)["services"]["postgis"]["environment"]
    assert pg["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256"
