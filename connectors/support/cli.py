"""``c360 connect support``: run the Zendesk and Intercom webhook receiver."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from connectors import envconfig
from connectors.serving import serve_until_stopped
from connectors.support.config import SupportConfig
from stream.core.rules import RulesError, load
from stream.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting of :class:`SupportConfig` (secrets: environment only)."""
    envconfig.add_flags(parser, SupportConfig)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until interrupted; 2 on a configuration error, 1 when it cannot start."""
    try:
        config = SupportConfig.from_env(flags=envconfig.flags_of(args, SupportConfig))
        rules = load(settings.rules_file)
    except (envconfig.ConfigError, RulesError) as exc:
        print(f"c360 connect support: {exc}", file=sys.stderr)
        return 2
    if not config.zendesk_secret and not config.intercom_secret:
        print(
            "c360 connect support: no webhook secret: set C360_SUPPORT_ZENDESK_SECRET "
            "and/or C360_SUPPORT_INTERCOM_SECRET",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from connectors.support.app import create_app

    app = create_app(config, settings, rules=rules)
    try:
        asyncio.run(
            serve_until_stopped(
                app,
                config.host,
                config.port,
                shutdown_timeout=config.shutdown_timeout,
                name="support",
            )
        )
    except Exception as exc:
        print(f"c360 connect support: cannot run: {exc}", file=sys.stderr)
        return 1
    return 0
