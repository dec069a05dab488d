"""``c360 connect chain``: read an EVM chain into ``chain.events`` until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from connectors import envconfig
from connectors.chain.config import ChainConfig
from stream.settings import Settings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting of :class:`ChainConfig` (the RPC URL: environment only)."""
    envconfig.add_flags(parser, ChainConfig)


async def serve(config: ChainConfig, settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run the connector until ``stop`` or a signal; flush and checkpoint on the way out."""
    from connectors.chain.connector import ChainConnector
    from connectors.chain.metrics import ChainMetrics
    from connectors.chain.rpc import RetryingRpc, RetryPolicy, Web3Rpc
    from connectors.metrics import serve_metrics
    from connectors.producer import BatchProducer
    from stream import admin, topics

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    metrics = ChainMetrics()
    rpc = RetryingRpc(
        Web3Rpc.http(config.rpc_url, config.rpc_timeout),
        RetryPolicy(retries=config.rpc_retries, base=config.rpc_backoff),
        on_error=lambda kind: metrics.rpc_errors.labels(kind).inc(),
    )
    await admin.ensure_topics(settings, (topics.CHAIN_EVENTS, topics.HOLDINGS))
    producer = BatchProducer(settings, client_id="c360-chain", up=metrics.up.labels("chain"))
    runner = None
    if config.metrics_port:
        runner = await serve_metrics(metrics.registry, config.metrics_host, config.metrics_port)
    await producer.start()
    try:
        connector = ChainConnector(config, rpc, producer, metrics=metrics)
        await connector.start()
        print(
            f"c360 chain connector: chain {connector.chain_id}, from block "
            f"{connector.next_block}, metrics on :{config.metrics_port}",
            flush=True,
        )
        await connector.run(stop)
        log.info("c360 chain connector stopping at block %d", connector.next_block - 1)
    finally:
        # every step flushes before it commits: stop() only closes (and flushes nothing new)
        await producer.stop()
        if runner is not None:
            await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run until interrupted; 2 on a configuration error, 1 when it stops on an error."""
    try:
        config = ChainConfig.from_env(flags=envconfig.flags_of(args, ChainConfig))
    except envconfig.ConfigError as exc:
        print(f"c360 connect chain: {exc}", file=sys.stderr)
        return 2
    if not config.rpc_url:
        print("c360 connect chain: set C360_CHAIN_RPC_URL", file=sys.stderr)
        return 2
    if not config.contracts and not config.wallets and not config.treasuries:
        print(
            "c360 connect chain: nothing to read: set C360_CHAIN_CONTRACTS, "
            "C360_CHAIN_WALLETS and/or C360_CHAIN_TREASURIES",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve(config, settings))
    except Exception as exc:
        print(f"c360 connect chain: stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
