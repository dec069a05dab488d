"""docker-compose.yml cannot run here (no Docker engine): check what can be checked."""

import re
from pathlib import Path

import yaml

from connectors import cli as connectors_cli
from connectors.chain.config import ChainConfig
from connectors.support.config import SupportConfig
from connectors.web.config import CollectorConfig
from stream.settings import OTHER_ENV, Settings

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
        assert host in services, job
        assert host in services["prometheus"]["depends_on"], job
    prometheus = services["prometheus"]
    assert "./ops/prometheus/rules:/etc/prometheus/rules:ro" in prometheus["volumes"]
    assert config["rule_files"] == ["rules/*.yml"]  # relative to /etc/prometheus/


def resolved(environment: dict) -> dict[str, str]:
    """A service's environment as compose passes it when nothing is set on the host:
    ``${VAR:-default}`` is its default."""
    out = {}
    for name, value in environment.items():
        value = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(value))
        assert "${" not in value, f"{name}: {value} has no default"
        out[name] = value
    return out


def test_the_chain_service_runs_the_connector_where_prometheus_scrapes_it():
    services = load()["services"]
    chain = services["chain"]
    assert chain["build"] == "."
    assert chain["command"] == ["connect", "chain"]
    raw = chain["environment"]
    assert raw["C360_KAFKA_BOOTSTRAP"] == "kafka:9092"
    # the RPC URL (which may hold an API key) comes from the host's environment
    assert raw["C360_CHAIN_RPC_URL"].startswith("${C360_CHAIN_RPC_URL:-")
    # with nothing set, the defaults make a valid configuration the command accepts
    config = ChainConfig.from_env(resolved(raw))
    assert config.rpc_url.startswith("http")
    assert config.contracts or config.wallets or config.treasuries
    # /metrics on every interface, on the port of the c360-chain scrape target
    prom = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    [target] = [
        t
        for job in prom["scrape_configs"]
        if job["job_name"] == "c360-chain"
        for static in job["static_configs"]
        for t in static["targets"]
    ]
    assert target == f"chain:{config.metrics_port}"
    assert config.metrics_host == "0.0.0.0"
    # the checkpoint is on a named volume: a new container resumes, no re-read
    mounts = dict(v.split(":")[:2] for v in chain["volumes"])
    [volume] = [s for s, p in mounts.items() if config.checkpoint_file.startswith(p + "/")]
    assert volume in load()["volumes"]


def test_the_long_running_services_are_restarted():
    # a worker or connector that stops (Kafka not up yet, a node out of reach) comes
    # back by itself, as it would under any supervisor
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("worker", "web", "support", "chain"):
        assert services[name].get("restart") == "unless-stopped", name


def test_kafka_keeps_its_log_on_a_named_volume():
    """The worker's state and the chain checkpoint outlive `docker compose down` on
    named volumes, and remember offsets: a Kafka whose log stayed in its container
    would come back empty, its topics made again, and the stages would skip the new
    topics' first records as already applied (README, Topics)."""
    compose = load()
    kafka = compose["services"]["kafka"]
    log_dirs = str(kafka["environment"].get("KAFKA_LOG_DIRS", ""))
    assert log_dirs, "KAFKA_LOG_DIRS unset: the image's default is /tmp in the container"
    mounts = dict(v.split(":")[:2] for v in kafka.get("volumes", []))
    for log_dir in log_dirs.split(","):
        held = [s for s, p in mounts.items() if log_dir == p or log_dir.startswith(p + "/")]
        assert held and held[0] in compose["volumes"], log_dir
    # the cluster id is pinned: the log on the volume is formatted with it once
    assert kafka["environment"].get("CLUSTER_ID")


def image_env() -> dict[str, str]:
    """The ``ENV`` of the Dockerfile, which every service built from it inherits."""
    out = {}
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("ENV "):
            out.update(pair.split("=", 1) for pair in line[4:].split())
    return out


def test_every_c360_service_reads_its_variables_and_serves_where_it_is_scraped():
    """Each service built from the Dockerfile: no ``C360_*`` variable that nothing reads
    (a typo is a silent default), values its command accepts, and the port it binds is
    the one compose publishes and Prometheus scrapes."""
    services = load()["services"]
    prom = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    targets = {
        t.split(":")[0]: int(t.split(":")[1])
        for job in prom["scrape_configs"]
        for static in job["static_configs"]
        for t in static["targets"]
    }
    known = Settings.env_names() | OTHER_ENV | connectors_cli.env_names()
    configs = {"web": CollectorConfig, "support": SupportConfig, "chain": ChainConfig}
    built = {name: s for name, s in services.items() if s.get("build") == "."}
    assert set(built) >= {"worker", "web", "support", "chain"}
    for name, service in built.items():
        env = {**image_env(), **resolved(service.get("environment", {}))}
        assert [v for v in env if v.startswith("C360_") and v not in known] == [], name
        settings = Settings.from_env(env)
        command = service["command"]
        if command == ["worker"]:
            host, port = settings.web_host, settings.web_port
        else:
            config = configs[command[1]].from_env(env)
            host = getattr(config, "host", None) or config.metrics_host
            port = getattr(config, "port", None) or config.metrics_port
        assert host == "0.0.0.0", name  # reachable from the other containers
        published = [int(p.rsplit(":", 1)[1]) for p in service.get("ports", [])]
        assert port in published, name
        assert targets[name] == port, name


def test_each_worker_has_its_own_state_url_and_scrape_target():
    """README, "Several workers": each worker needs its own C360_DATA_DIR and a URL the
    others reach it at; a worker service advertises its service name (a copy for a second
    worker changes the name, the volume and the host port together), and Prometheus
    scrapes each (each reports only its own partitions' gauges)."""
    compose = load()
    prom = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    [job] = [j for j in prom["scrape_configs"] if j["job_name"] == "c360-worker"]
    scraped = {t for static in job["static_configs"] for t in static["targets"]}
    workers = {n: s for n, s in compose["services"].items() if s.get("command") == ["worker"]}
    assert workers
    urls, volumes = set(), set()
    for name, service in workers.items():
        settings = Settings.from_env({**image_env(), **resolved(service["environment"])})
        assert settings.advertised_url == f"http://{name}:{settings.web_port}", name
        assert f"{name}:{settings.web_port}" in scraped, name
        mounts = dict(v.split(":")[:2] for v in service["volumes"])
        [volume] = [s for s, p in mounts.items() if p == str(settings.data_dir)]
        assert volume in compose["volumes"], name
        urls.add(settings.advertised_url)
        volumes.add(volume)
    assert len(urls) == len(volumes) == len(workers)


def test_prometheus_keeps_its_history_on_a_named_volume():
    """C360MergeRefusalSpike compares with the hour before and C360WorkerRestarting
    counts restarts over 15 minutes: a `docker compose down` must not reset them."""
    compose = load()
    prometheus = compose["services"]["prometheus"]
    [path] = [a.split("=", 1)[1] for a in prometheus["command"] if "storage.tsdb.path" in a]
    mounts = dict(v.split(":")[:2] for v in prometheus["volumes"])
    [volume] = [s for s, p in mounts.items() if p == path]
    assert volume in compose["volumes"]


def test_compose_runs_the_kafka_the_tests_run_against():
    """ops/kafka/pom.xml fetches the jars of the broker every test runs on."""
    pom = (ROOT / "ops/kafka/pom.xml").read_text()
    [version] = re.findall(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert load()["services"]["kafka"]["image"] == f"apache/kafka:{version}"


def test_a_worker_is_healthy_when_ready():
    # docker compose ps shows a worker that restores its state or lost the broker as
    # unhealthy: the check asks the worker's own /ready, on the port it serves
    worker = load()["services"]["worker"]
    check = " ".join(worker["healthcheck"]["test"])
    port = Settings.from_env(worker["environment"]).web_port
    assert f"http://127.0.0.1:{port}/ready" in check
