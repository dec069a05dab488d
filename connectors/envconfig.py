"""Typed, frozen connector configurations read from environment variables and flags.

A connector's configuration is a frozen dataclass whose fields are declared with
:func:`setting`: an environment variable, a default and a line of documentation.
:func:`from_env` reads them (flags override the environment), :func:`add_flags`
adds one ``--flag`` per non-secret setting to an argparse parser, and
:func:`markdown` renders the table the connector's documentation shows.

Supported types: ``str``, ``int``, ``float``, ``bool``, ``tuple[str, ...]`` and
``tuple[int, ...]`` (comma-separated in the environment).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import field
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from stream.settings import number, out_of_range, whole

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is malformed or out of range."""


def setting(
    env: str,
    default: Any,
    doc: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    secret: bool = False,
) -> Any:
    """Declare a configuration field. Secrets are read from the environment only (no flag)."""
    return field(
        default=default,
        metadata={
            "env": env,
            "doc": doc,
            "minimum": minimum,
            "maximum": maximum,
            "secret": secret,
        },
    )


def _item(part: str) -> int:
    """One whole number of a comma-separated list, named when it is not one."""
    try:
        return int(part)
    except ValueError:
        raise ValueError(f"{part!r} is not a whole number") from None


def _parse(hint: Any, raw: str, env: str) -> Any:
    try:
        if hint is bool:
            low = raw.strip().lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off"}:
                return False
            raise ValueError("expected true or false")
        if hint is int:
            return whole(raw)
        if hint is float:
            return number(raw)
        if get_origin(hint) is tuple:
            item = get_args(hint)[0]
            parts = [p.strip() for p in raw.split(",") if p.strip()]
            return tuple(_item(p) for p in parts) if item is int else tuple(parts)
        return raw.strip()
    except ValueError as exc:
        raise ConfigError(f"{env}={raw!r}: {exc}") from None


def from_env(
    cls: type[T], environ: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None
) -> T:
    """Build ``cls`` from ``environ`` (default ``os.environ``); ``flags`` (raw strings) win.

    A blank value means "not set": the default applies.
    """
    env = os.environ if environ is None else environ
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = f.metadata["env"]
        raw = (flags or {}).get(f.name)
        source = f"--{f.name.replace('_', '-')}"  # a flag wins: name the flag in errors
        if raw is None:
            raw, source = env.get(name), name
        if raw is not None and str(raw).strip() != "":
            values[f.name] = _parse(hints[f.name], str(raw), source)
    config = cls(**values)
    check(config)
    return config


def check(config: Any) -> None:
    """Raise :class:`ConfigError` when a numeric setting is not finite or out of its range."""
    for f in dataclasses.fields(config):
        problem = out_of_range(f, getattr(config, f.name))
        if problem is not None:
            raise ConfigError(problem)


def env_names(*classes: type) -> frozenset[str]:
    """The environment variables the configuration ``classes`` read."""
    return frozenset(f.metadata["env"] for cls in classes for f in dataclasses.fields(cls))


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--name`` flag per non-secret setting (default: the environment, then the default)."""
    for f in dataclasses.fields(cls):
        if f.metadata["secret"]:
            continue
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=None,
            metavar="VALUE",
            help=f"{f.metadata['doc']} (env {f.metadata['env']})",
        )


def flags_of(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The settings given as flags in ``args``."""
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(cls)
        if getattr(args, f.name, None) is not None
    }


def markdown(cls: type) -> str:
    """A table of the settings: variable, flag, default, meaning."""
    rows = ["| Variable | Flag | Default | Meaning |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(cls):
        default = f.default
        if isinstance(default, tuple):
            default = ",".join(str(d) for d in default)
        shown = "(empty)" if default in ("", None) else f"`{default}`"
        flag = "(env only)" if f.metadata["secret"] else f"`--{f.name.replace('_', '-')}`"
        rows.append(f"| `{f.metadata['env']}` | {flag} | {shown} | {f.metadata['doc']} |")
    return "\n".join(rows) + "\n"
