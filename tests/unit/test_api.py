"""The lookup API's JSON (stream/shell/api.py)."""

from __future__ import annotations

import msgspec

from stream.shell.api import _json


def test_responses_keep_integers_beyond_64_bits_exact():
    # the internal endpoints hand over state rows with raw token amounts (wei)
    row = {"vol": {"1:native": 12 * 10**24}, "n": 3}
    response = _json(200, row)
    assert response.status == 200
    assert msgspec.json.decode(response.body) == row
