"""Small helpers shared by gridwatch's own aiokafka clients."""

from __future__ import annotations

import asyncio
from typing import Any


async def partitions_of(consumer: Any, topic: str) -> list[int]:
    """The partitions of `topic`, asking the broker when the client has no metadata for it yet.

    An aiokafka consumer without a subscription starts with no topic metadata on Apache Kafka
    (the embedded broker happens to send all of it), so `partitions_for_topic` alone answers
    None there: a reader would silently see an empty topic.
    """
    await asyncio.sleep(0)  # lets a just-started consumer's tasks begin (aiokafka: stop() right
    # after start() without a yield raises CancelledError from its coordinator)
    parts = consumer.partitions_for_topic(topic)
    if not parts:  # a full metadata request; its answer is returned, not kept by the client
        cluster = await consumer._client.fetch_all_metadata()
        parts = cluster.partitions_for_topic(topic)
    return sorted(parts or ())
