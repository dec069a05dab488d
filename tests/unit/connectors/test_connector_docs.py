"""The connectors' documentation shows their current configuration."""

from pathlib import Path

import pytest

from connectors import envconfig
from connectors.chain.config import ChainConfig
from connectors.support.config import SupportConfig
from connectors.web.config import CollectorConfig

DOCS = Path(__file__).parents[3] / "docs" / "connectors"


@pytest.mark.parametrize(
    ("doc", "config"),
    [("web.md", CollectorConfig), ("support.md", SupportConfig), ("chain.md", ChainConfig)],
)
def test_the_configuration_table_is_current(doc, config):
    text = (DOCS / doc).read_text()
    table = text.split("<!-- config:begin -->\n")[1].split("<!-- config:end -->")[0]
    assert table == envconfig.markdown(config), f"update the table in docs/connectors/{doc}"


def test_every_setting_has_a_connector_prefix():
    for config, prefix in (
        (CollectorConfig, "C360_COLLECTOR_"),
        (SupportConfig, "C360_SUPPORT_"),
        (ChainConfig, "C360_CHAIN_"),
    ):
        for f in config.__dataclass_fields__.values():
            assert f.metadata["env"].startswith(prefix)
