"""The source protocol: the stream protocol's frames and handshake, spoken the other way
round (a source connects to an aggregator and pushes updates)::

    source                                        aggregator
    hello {version, token, client, source}  ->
                                            <-    welcome {version, source}
                                                  | error {code, reason}, then closes
    update {seq, body}                      ->    (rate_hz times a second; an empty
                                                   delta is the heartbeat)
                                            <-    checkpoint {after}  (a gap was seen)
    bye {}                                  ->    (a clean end; no bye is a lost source)

``seq`` counts the updates a source made since it started, from 1; an update lost on the
way (a full outbox, a reconnection) leaves a gap that the aggregator heals by asking for
a checkpoint: the source's next update is full.
"""

from __future__ import annotations

from typing import Final

from ..codec import DecodeLimits

UPDATE: Final = "update"
CHECKPOINT: Final = "checkpoint"
BYE: Final = "bye"

MAX_UPDATE_BYTES: Final = 256 * 1024 * 1024
"""The largest update frame an aggregator accepts (a checkpoint of millions of blocks)."""
UPDATE_LIMITS: Final = DecodeLimits(max_bytes=MAX_UPDATE_BYTES)
DEFAULT_UPDATE_HZ: Final = 10.0
"""How many updates a source sends a second by default."""
HEARTBEAT_TIMEOUT_S: Final = 3.0
"""How long an aggregator waits for a source's next update before marking it gone."""
OUTBOX_UPDATES: Final = 8
"""Updates a source may have waiting to be written; one made beyond is lost (a gap)."""
