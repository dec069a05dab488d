"""Write-key authentication, as Segment does it: HTTP Basic with the key as the username.

Two kinds of key decide how much an event is trusted: a **browser** key is public
(it ships in the page) and can only send events; a **server** key is a secret of
the product's backend, and an identify sent with it is verified evidence. The
kind is returned by :meth:`WriteKeys.kind`; the collector writes it into
``context.c360.auth`` and never reads a client's claim.
"""

from __future__ import annotations

import base64
import hmac
from typing import Literal

KeyKind = Literal["server", "browser"]


def basic_username(header: str | None) -> str | None:
    """The username of an ``Authorization: Basic`` header (the write key), or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8 once decoded
        return None
    username, _, _password = decoded.partition(":")
    return username or None


class WriteKeys:
    """The configured browser and server write keys."""

    def __init__(self, browser: tuple[str, ...], server: tuple[str, ...]) -> None:
        self._keys: list[tuple[bytes, KeyKind]] = [
            *((k.encode(), "server") for k in server if k),
            *((k.encode(), "browser") for k in browser if k),
        ]

    def kind(self, key: str | None) -> KeyKind | None:
        """``server``, ``browser``, or None for an unknown key (compared in constant time)."""
        if not key:
            return None
        try:
            given = key.encode()
        except UnicodeEncodeError:  # a lone surrogate, e.g. a "\ud800" escape in a body
            return None
        found: KeyKind | None = None
        for known, kind in self._keys:  # no early exit: the time does not depend on the match
            if hmac.compare_digest(known, given) and found is None:
                found = kind
        return found
