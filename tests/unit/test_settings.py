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
    ],
)
def test_bad_values_get_a_clear_error(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


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
