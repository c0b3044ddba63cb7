"""Error classes that say whether retrying can help (the aiokafka habit)."""

from __future__ import annotations


class GridwatchError(Exception):
    """Base class. `retriable` tells a caller whether the same call may succeed later."""

    retriable = False


class ConfigError(GridwatchError, ValueError):
    """A setting is missing or out of range; the message names the variable."""


class TopicsNotReady(GridwatchError):
    """Topics are missing or mis-partitioned: run `gridwatch topics create`."""


class BrokerUnavailable(GridwatchError):
    """The broker did not answer in time. Retriable."""

    retriable = True


class Rejected(GridwatchError):
    """An input record cannot be used; `code` goes to the DLQ with the reason."""

    def __init__(self, code: str, reason: str, retriable: bool = False) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.retriable = retriable
