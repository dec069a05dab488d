"""The channel stage: revenue by acquisition channel, fed by ±deltas (keyed by channel).

The profile stage sends a delta whenever a person's first-touch channel or its
revenue changes (a merge that changes a person's first touch moves its revenue
from the old channel to the new one), so the table always equals the offline
sum over persons. Row ``c:{channel}``: ``persons`` and raw ``revenue`` per token.
"""

from __future__ import annotations

from typing import Any

from stream.core.messages import ChannelDelta
from stream.core.state import Emit, State


class ChannelStage:
    def process(self, state: State, messages: list[Any], emit: Emit) -> None:
        for d in messages:
            if type(d) is not ChannelDelta:
                continue
            key = "c:" + d.channel
            row = state.get(key) or {"persons": 0, "revenue": {}}
            row["persons"] += d.persons
            revenue = row["revenue"]
            for token, raw in d.revenue.items():
                value = revenue.get(token, 0) + raw
                if value:
                    revenue[token] = value
                else:
                    revenue.pop(token, None)
            if row["persons"] == 0 and not revenue:
                state.delete(key)
            else:
                state.put(key, row)


def channel_rows(state: State) -> dict[str, dict[str, Any]]:
    """Every channel of a partition: {channel: {persons, revenue}}."""
    return {key[2:]: row for key, row in state.scan("c:", "c;")}
