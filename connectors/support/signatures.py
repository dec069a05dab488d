"""Webhook signatures of Zendesk and Intercom, compared in constant time.

- Zendesk: ``X-Zendesk-Webhook-Signature`` = base64(HMAC-SHA256(secret, timestamp + body)),
  where timestamp is the ``X-Zendesk-Webhook-Signature-Timestamp`` header.
- Intercom: ``X-Hub-Signature`` = ``sha1=`` + hex(HMAC-SHA1(client secret, body)).

Both are ASCII. aiohttp decodes header bytes as UTF-8 with surrogate escapes, so a
header may hold any character (one that cannot even be encoded back): a value that is
not ASCII is an invalid signature, never an exception.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def zendesk_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The signature Zendesk sends for ``body`` signed at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def intercom_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value Intercom sends for ``body``."""
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def zendesk_valid(secret: str, timestamp: str | None, body: bytes, signature: str | None) -> bool:
    """Does ``signature`` sign ``timestamp + body`` with ``secret``?"""
    if not secret or not timestamp or not signature:
        return False
    if not timestamp.isascii() or not signature.isascii():  # see the module doc
        return False
    expected = zendesk_signature(secret, timestamp, body)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def intercom_valid(secret: str, body: bytes, signature: str | None) -> bool:
    """Does ``signature`` (``sha1=<hex>``) sign ``body`` with ``secret``?"""
    if not secret or not signature or not signature.isascii():  # see the module doc
        return False
    expected = intercom_signature(secret, body)
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())
