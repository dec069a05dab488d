"""Which topics a deployment owns (what tests and benchmarks delete after a run)."""

from __future__ import annotations

import asyncio

import pytest

from stream import admin
from stream.settings import Settings


def test_a_deployment_owns_its_prefixed_topics_and_faust_topics_of_its_app_id():
    settings = Settings.from_env({}, app_id="c360-test-ab", topic_prefix="tab.")
    names = [
        "tab.web.events",
        "c360-test-ab-profile-changelog",
        "c360-test-ab-__assignor-__leader",
        "c360-test-abc-profile-changelog",  # another app id that starts with this one
        "tabx.web.events",  # another prefix that starts with this one's letters
        "c360.web.events",
        "__consumer_offsets",
    ]
    assert admin.owned_topics(settings, names) == [
        "c360-test-ab-__assignor-__leader",
        "c360-test-ab-profile-changelog",
        "tab.web.events",
    ]


def test_an_app_id_that_begins_other_app_ids_owns_none_of_their_topics():
    base = Settings.from_env({})  # app id "c360", prefix "c360."
    others = [
        "c360-test-1a2b-profile-changelog",
        "c360-test-1a2b-__assignor-__leader",
        "c360-demo-3c4d-route-changelog",
        "c360-x-__assignor-__leader",
    ]
    mine = ["c360-profile-changelog", "c360-__assignor-__leader", "c360.web.events"]
    assert admin.owned_topics(base, others + mine) == sorted(mine)


def test_every_changelog_of_the_app_is_owned_by_its_deployment(tmp_path):
    """The app's table names have no dash, which ``owned_topics`` relies on."""
    from stream.app import create_app

    settings = Settings.from_env({}, app_id="c360-test-ab", data_dir=tmp_path)
    app = create_app(settings).app
    changelogs = [t.changelog_topic.get_topic_name() for t in app.tables.values()]
    assert len(changelogs) >= 5  # prices, route, link, profile, channel
    assert admin.owned_topics(settings, changelogs) == sorted(changelogs)


def test_a_deployment_without_a_topic_prefix_is_never_dropped():
    settings = Settings.from_env({}, topic_prefix="", kafka_bootstrap="127.0.0.1:1")
    with pytest.raises(ValueError, match="empty topic prefix"):
        asyncio.run(admin.drop_deployment(settings))
