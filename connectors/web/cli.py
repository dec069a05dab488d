"""``c360 connect web``: run the Segment-compatible collector with Sign-In With Ethereum."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from connectors import envconfig
from connectors.serving import serve_until_stopped
from connectors.web.config import CollectorConfig
from stream.core.rules import RulesError, load
from stream.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting of :class:`CollectorConfig` (server keys: environment only)."""
    envconfig.add_flags(parser, CollectorConfig)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until interrupted; 2 on a configuration error, 1 when it cannot start."""
    try:
        config = CollectorConfig.from_env(flags=envconfig.flags_of(args, CollectorConfig))
        config.check_record_limit(settings.record_max_bytes)
        rules = load(settings.rules_file)
    except (envconfig.ConfigError, RulesError) as exc:
        print(f"c360 connect web: {exc}", file=sys.stderr)
        return 2
    if not config.browser_keys and not config.server_keys:
        print(
            "c360 connect web: no write keys: set C360_COLLECTOR_BROWSER_KEYS "
            "and/or C360_COLLECTOR_SERVER_KEYS",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from connectors.web.app import create_app  # heavy (eth-account): only when running

    app = create_app(config, settings, rules=rules)
    try:
        asyncio.run(
            serve_until_stopped(
                app,
                config.host,
                config.port,
                shutdown_timeout=config.shutdown_timeout,
                name="web",
            )
        )
    except Exception as exc:
        print(f"c360 connect web: cannot run: {exc}", file=sys.stderr)
        return 1
    return 0
