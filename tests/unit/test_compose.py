"""docker-compose.yml cannot run here (no Docker engine): check what can be checked."""

from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]


def load():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_stack_has_kafka_a_worker_prometheus_and_grafana():
    services = load()["services"]
    assert {"kafka", "worker", "prometheus", "grafana"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:4.1")
    assert services["worker"]["build"] == "."
    assert (ROOT / "Dockerfile").is_file()


def test_every_mounted_file_exists_in_the_repo():
    missing = []
    for name, service in load()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith(".") and not (ROOT / source).exists():
                missing.append(f"{name}: {source}")
    assert not missing


def test_worker_talks_to_the_compose_kafka():
    worker = load()["services"]["worker"]
    assert worker["environment"]["C360_KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_prometheus_scrapes_the_compose_services_it_has():
    services = load()["services"]
    config = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    jobs = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert set(jobs) == {"c360-worker", "c360-web", "c360-support", "c360-chain"}
    for job, target in jobs.items():
        host = target.split(":")[0]
        if job == "c360-chain" and not (ROOT / "connectors" / "chain").exists():
            continue  # built on another branch: once merged, compose must run it
        assert host in services, job
    prometheus = services["prometheus"]
    assert "./ops/prometheus/rules:/etc/prometheus/rules:ro" in prometheus["volumes"]
    assert config["rule_files"] == ["rules/*.yml"]  # relative to /etc/prometheus/
