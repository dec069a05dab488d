"""``c360 connect <name>``: the connectors' command-line entries.

Each connector module provides ``add_arguments(parser)`` and
``run(args, settings) -> int``; register it in ``CONNECTORS``.
"""

from __future__ import annotations

import argparse
import importlib

from stream.settings import Settings

# name -> (module, help)
CONNECTORS: dict[str, tuple[str, str]] = {
    "web": (
        "connectors.web.cli",
        "Segment-compatible web collector with Sign-In With Ethereum (HTTP)",
    ),
    "support": ("connectors.support.cli", "Zendesk and Intercom webhook receiver (HTTP)"),
    "chain": (
        "connectors.chain.cli",
        "EVM chain connector: contract logs, wallet transactions, reorg retractions",
    ),
}


def add_parsers(connect: argparse.ArgumentParser) -> None:
    sub = connect.add_subparsers(dest="connector", required=True)
    for name, (module, help_text) in CONNECTORS.items():
        parser = sub.add_parser(name, help=help_text)
        importlib.import_module(module).add_arguments(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    module, _ = CONNECTORS[args.connector]
    return importlib.import_module(module).run(args, settings)


def env_names() -> frozenset[str]:
    """The environment variables the connectors' configurations read."""
    from connectors.chain.config import ChainConfig
    from connectors.envconfig import env_names as names_of
    from connectors.support.config import SupportConfig
    from connectors.web.config import CollectorConfig

    return names_of(ChainConfig, SupportConfig, CollectorConfig)
