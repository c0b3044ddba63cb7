"""The web board's follower on the embedded broker: compacted topics read whole, history topics
only from their last `backlog` records per partition, and new records after that live."""

from __future__ import annotations

import asyncio
import os

import orjson
import pytest
from kafka import KafkaProducer

from pipeline.envelope import make_event
from pipeline.settings import Settings, aiokafka_config
from pipeline.web.board import FOLLOWED, Board, BoardFollower
from tests.integration.test_web_api import incident
from topics.admin import create

pytestmark = pytest.mark.integration


def located_report(i: int) -> bytes:
    data = {"grid_id": "g1", "path": ["C", "T", "M", "g1"], "source_type": "report",
            "observed_at": "2026-07-01T12:00:00.000Z",
            "input": {"report_id": f"R{i}", "category": "safety_hazard", "severity": "low", "text": f"#{i}"}}
    return orjson.dumps(make_event("gridwatch.located.v1", f"loc-R{i}", data["observed_at"], data))


async def follow(s: Settings, board: Board, backlog: int, until, then=None,
                 follower: BoardFollower | None = None) -> BoardFollower:
    """Follow until the board is ready and `until(board)`; then call `then()` and wait for
    `until` again (`then` returns the new condition). Pass `follower` to run one again."""
    follower = follower or BoardFollower(board, {t: s.topic(t) for t in FOLLOWED}, aiokafka_config(s),
                                         backlog=backlog)
    task = asyncio.create_task(follower.run())
    try:
        for cond in (until, then):
            if cond is None:
                return follower
            if cond is then:
                cond = then()
            for _ in range(300):
                if board.ready and cond(board):
                    break
                assert not task.done(), follower.error
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"not complete: {len(board.reports)} reports, {follower.error}")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return follower


def test_history_topics_start_from_the_backlog_and_compacted_ones_whole(broker):
    s = Settings.from_env({}, broker=broker.bootstrap, topic_prefix=f"bf{os.getpid()}.", embedded=True)
    create(s)
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for grid in ("g1", "g2", "g3"):
        inc = incident(grid)
        prod.send(s.topic("incidents.v1"), key=inc["incident_id"].encode(), partition=0,
                  value=orjson.dumps(make_event("gridwatch.incident.v1", inc["incident_id"], inc["opened_at"],
                                                inc)))
    for i in range(15):  # one batch each: the broker's end offset is then exact
        prod.send(s.topic("located.v1"), key=b"g1", partition=0, value=located_report(i))
        prod.flush()

    board = Board()
    follower = asyncio.run(follow(s, board, 4, lambda b: len(b.incidents) == 3))
    assert [r["report_id"] for r in board.reports] == ["R11", "R12", "R13", "R14"]
    assert board.records["located.v1"] == 4

    # the same follower run again (as after a failure) resumes: the new record, nothing twice
    prod.send(s.topic("located.v1"), key=b"g1", partition=0, value=located_report(15))
    prod.flush()
    asyncio.run(follow(s, board, 4, lambda b: len(b.reports) == 5, follower=follower))
    assert [r["report_id"] for r in board.reports] == ["R11", "R12", "R13", "R14", "R15"]
    assert board.records["located.v1"] == 5 and board.records["incidents.v1"] == 3

    board = Board()  # a backlog larger than the topic: everything
    asyncio.run(follow(s, board, 1000, lambda b: len(b.reports) == 16))
    assert len(board.incidents) == 3

    board = Board()  # backlog 0: only what arrives after the start, and that live
    seen_at_start: list = []

    def send_one():
        seen_at_start.extend(r["report_id"] for r in board.reports)
        prod.send(s.topic("located.v1"), key=b"g1", partition=0, value=located_report(99))
        prod.flush()
        return lambda b: bool(b.reports)

    asyncio.run(follow(s, board, 0, lambda b: len(b.incidents) == 3, send_one))
    assert seen_at_start == [] and [r["report_id"] for r in board.reports] == ["R99"]
    prod.close()
