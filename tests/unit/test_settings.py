import asyncio
from pathlib import Path

import pytest

from stream.settings import Settings, SettingsError


def test_defaults_need_no_environment():
    s = Settings.from_env({})
    assert s.kafka_bootstrap == "127.0.0.1:19092"
    assert s.web_host == "127.0.0.1"
    assert s.partitions == 4


def test_environment_is_parsed_by_type():
    s = Settings.from_env(
        {
            "C360_PARTITIONS": "8",
            "C360_TICK_INTERVAL": "2.5",
            "C360_DATA_DIR": "/x",
            "C360_RULES_FILE": "",
        }
    )
    assert (s.partitions, s.tick_interval, s.data_dir, s.rules_file) == (8, 2.5, Path("/x"), None)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"C360_PARTITIONS": "many"}, "C360_PARTITIONS='many'"),
        ({"C360_PARTITIONS": "0"}, "below its minimum"),
        ({"C360_LOG_LEVEL": "loud"}, "not a log level"),
        ({"C360_STATE_COMMIT_INTERVAL": "nan"}, "not a finite number"),  # nan < 0 is False
        ({"C360_TICK_INTERVAL": "inf"}, "not a finite number"),
        ({"C360_WEB_PORT": "70000"}, "above its maximum 65535"),
        ({"C360_STANDBY_REPLICAS": "-1"}, "below its minimum 0"),
        ({"C360_ROCKSDB_MEMTABLE_BLOOM": "5"}, "above its maximum 0.25"),
        ({"C360_HEARTBEAT_INTERVAL": "30"}, "must be below C360_SESSION_TIMEOUT"),
        # Kafka refuses a member's session timeout outside its group.min/max.session.timeout.ms
        # (6 s and 30 min by default, and on the local broker): the worker then logged one
        # InvalidSessionTimeoutError and never joined, never ready, never exiting
        ({"C360_SESSION_TIMEOUT": "3"}, "below its minimum 6"),
        ({"C360_SESSION_TIMEOUT": "3600"}, "above its maximum 1800"),
        # over the 4 MiB c360's topics and producers take: a connector's batch of that size
        # would be refused by its producer (the chain connector stops, the collector 500s)
        ({"C360_RECORD_MAX_BYTES": "8000000"}, "above its maximum 4000000"),
        ({"C360_KAFKA_BOOTSTRAP": "kafka:ninety"}, "is not host:port"),
        ({"C360_KAFKA_BOOTSTRAP": "a:1,:9092"}, "':9092' is not host:port"),
        ({"C360_WEB_ADVERTISED_URL": "worker-1:6066"}, "is not http"),
        ({"C360_WEB_ADVERTISED_URL": "ftp://worker-1:6066"}, "is not http"),
        ({"C360_WEB_ADVERTISED_URL": "http://worker-1:port"}, "is not http"),
        ({"C360_WEB_ADVERTISED_URL": "http://worker-1:6066/api"}, "is not http"),
    ],
)
def test_bad_values_get_a_clear_error(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_a_kafka_address_without_a_port_is_kafkas_default_port():
    for servers in ("kafka,b:9093", "[::1]:9092"):
        assert Settings.from_env({"C360_KAFKA_BOOTSTRAP": servers}).kafka_bootstrap == servers


def test_the_url_other_workers_reach_a_worker_at_names_it_even_when_it_binds_every_interface():
    """Behind a wildcard bind (the Dockerfile's 0.0.0.0) every worker advertised
    http://0.0.0.0:6066, so each took itself for the owner of every key (faust's router
    compares the owner's URL with its own) and answered 404 for the keys of the others."""
    import socket

    from stream.app import faust_options

    assert Settings.from_env({}).advertised_url == "http://127.0.0.1:6066"
    wildcard = Settings.from_env({"C360_WEB_HOST": "0.0.0.0", "C360_WEB_PORT": "6070"})
    assert wildcard.advertised_url == f"http://{socket.gethostname()}:6070"
    assert wildcard.web_url == "http://127.0.0.1:6070"  # a client on the same machine
    named = wildcard.replace(web_advertised_url="http://worker-2:6070/")
    assert named.advertised_url == "http://worker-2:6070"
    assert faust_options(named)["canonical_url"] == "http://worker-2:6070"
    assert Settings.from_env({"C360_WEB_HOST": "::1"}).web_url == "http://[::1]:6066"


def test_settings_are_frozen():
    s = Settings.from_env({})
    with pytest.raises(AttributeError):
        s.partitions = 3  # type: ignore[misc]


def test_round_trip_through_the_environment():
    s = Settings.from_env({}, partitions=3, api_key="k", rules_file=Path("r.json"))
    assert Settings.from_env(s.to_env()) == s


def test_docs_settings_md_is_generated_from_the_settings():
    doc = Path(__file__).parents[2] / "docs" / "settings.md"
    assert doc.read_text() == Settings.markdown(), (
        "run: .venv/bin/c360 settings --markdown > docs/settings.md"
    )


def test_a_c360_variable_nothing_reads_is_named_with_the_nearest_known_one():
    from stream.settings import unknown_env

    known = Settings.env_names()
    env = {"C360_PARTITION": "8", "C360_PARTITIONS": "4", "HOME": "/root", "C360_ZZZ": "1"}
    assert unknown_env(known, env) == [
        "C360_PARTITION is not a c360 setting (did you mean C360_PARTITIONS?)",
        "C360_ZZZ is not a c360 setting",
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"C360_PARTITIONS": "four"}, "C360_PARTITIONS='four': not a whole number"),
        ({"C360_SESSION_TIMEOUT": "6s"}, "C360_SESSION_TIMEOUT='6s': not a number"),
    ],
)
def test_a_value_of_the_wrong_kind_is_named_without_python_jargon(env, message):
    """It said: invalid literal for int() with base 10: 'four'."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"C360_COLLECTOR_PORT": "x"}, "C360_COLLECTOR_PORT='x': not a whole number"),
        (
            {"C360_COLLECTOR_SIWE_CHAIN_IDS": "1,base"},
            "C360_COLLECTOR_SIWE_CHAIN_IDS='1,base': 'base' is not a whole number",
        ),
        (
            {"C360_COLLECTOR_DELIVERY_TIMEOUT": "10s"},
            "C360_COLLECTOR_DELIVERY_TIMEOUT='10s': not a number",
        ),
    ],
)
def test_a_connector_value_of_the_wrong_kind_is_named_without_python_jargon(env, message):
    from connectors.envconfig import ConfigError, from_env
    from connectors.web.config import CollectorConfig

    with pytest.raises(ConfigError) as caught:
        from_env(CollectorConfig, env)
    assert str(caught.value) == message


@pytest.mark.parametrize("seconds", ["6", "120", "1800"])
def test_a_session_timeout_in_its_range_builds_a_consumer(seconds, tmp_path):
    # faust refuses broker_session_timeout over broker_request_timeout (90 s by default)
    # when it builds the consumer: a worker with C360_SESSION_TIMEOUT=120 crashed at start
    from stream.app import create_app

    settings = Settings.from_env({"C360_SESSION_TIMEOUT": seconds}, data_dir=tmp_path)
    app = create_app(settings).app

    async def build() -> None:  # the aiokafka consumer is built inside a running loop
        thread = app.consumer._new_consumer_thread()
        consumer = thread._create_worker_consumer(app.transport)  # ImproperlyConfigured?
        assert consumer._session_timeout_ms == float(seconds) * 1000

    asyncio.run(build())
