"""Identity quality of a running deployment: ask its API who each identifier is.

``assignments`` resolves identifiers to persons through ``GET /v1/identities`` (a
few dozen requests in flight); :func:`stream.population.score` turns the answer and
the ground truth into pairwise precision and recall.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from urllib.parse import quote

import aiohttp

from stream.settings import Settings


async def assignments(
    settings: Settings, identifiers: Iterable[str], concurrency: int = 24
) -> dict[str, str]:
    """identifier -> person id, for the identifiers the deployment has seen."""
    headers = {"X-API-Key": settings.api_key} if settings.api_key else {}
    todo = list(identifiers)
    out: dict[str, str] = {}
    errors: list[str] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        while todo:
            ident = todo.pop()
            url = f"{settings.web_url}/v1/identities/{quote(ident, safe=':')}"
            async with session.get(url, headers=headers) as response:
                if response.status == 200:
                    out[ident] = (await response.json())["person_id"]
                elif response.status != 404:
                    errors.append(f"{ident}: HTTP {response.status} {await response.text()}")

    timeout = aiohttp.ClientTimeout(total=None, sock_read=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    if errors:
        raise RuntimeError(f"{len(errors)} identity lookups failed, e.g. {errors[0]}")
    return out
