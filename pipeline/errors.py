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
    """The broker did not answer in time. Retriable.

    `bootstrap` is set when the configured broker was found not reachable (`ensure_reachable`):
    the CLI says so in one line and exits 3; without it (a broker gridwatch starts itself failed)
    it is an error like the others.
    """

    retriable = True

    def __init__(self, message: str, bootstrap: str | None = None) -> None:
        super().__init__(message)
        self.bootstrap = bootstrap


class Rejected(GridwatchError):
    """An input record cannot be used; `code` goes to the DLQ with the reason."""

    def __init__(self, code: str, reason: str, retriable: bool = False) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.retriable = retriable


#: Every DLQ code (the one place they are defined; ``dlq.json`` lists the same, a test checks):
#: code -> (the stage that writes it, what it means). docs/runbooks.md "Bad input" prints this table.
DLQ_CODES: dict[str, tuple[str, str]] = {
    "too_large": ("every input", "the record is larger than GRIDWATCH_MAX_MESSAGE_BYTES"),
    "not_json": ("every input", "the value is null or not JSON"),
    "not_object": ("every input", "the JSON is not an object"),
    "bad_envelope": ("every input", "CloudEvents attributes missing or malformed"),
    "unknown_type": ("every input", "the envelope's type does not belong on this topic"),
    "bad_data": ("every input", "the data body does not match the topic's JSON Schema"),
    "bad_time": ("every input", "a time is not ISO 8601 with a UTC offset"),
    "time_out_of_range": ("every input", "a time is outside 2000..2100, or further from the "
                          "record timestamp or the partition's clock than "
                          "GRIDWATCH_MAX_FUTURE_S / GRIDWATCH_MAX_PAST_S allow"),
    "unknown_device": ("ingest", "a ping from a device not registered on devices.v1 (retriable)"),
    "bad_tick": ("detectors", "a clock.v1 tick that is not epoch milliseconds in range"),
    "bad_located": ("detectors", "a located.v1 record without the fields the detectors read"),
    "bad_record": ("detectors, incidents", "an internal record that cannot be read"),
    "bad_unit": ("detectors", "a reading in a unit its kind does not use"),
    "implausible_reading": ("detectors", "a reading outside the physical range of its kind"),
    "unusable_reading": ("detectors", "a reading a detector cannot use (e.g. NaN)"),
    "late_event": ("detectors", "older than everything the detector keeps (the watermark is in "
                   "the reason)"),
    "bad_command": ("commands", "a commands.v1 record that is not a valid command"),
    "bad_signature": ("commands", "a command without a valid gwsignature where GRIDWATCH_COMMAND_KEY "
                      "is set (not written by the web server or an action link)"),
    "unknown_incident": ("incidents", "no such incident on its partition (or already forgotten)"),
    "unknown_action": ("incidents", "an action the lifecycle does not have"),
    "out_of_scope": ("incidents", "the actor's scope is not on the incident's path"),
    "illegal_transition": ("incidents", "the action is not allowed in the incident's state"),
    "reason_required": ("incidents", "cancel and merge need a reason"),
    "children_open": ("incidents", "a zone incident cannot be verified, cancelled or merged while "
                      "grid incidents are open"),
    "bad_merge_target": ("incidents", "a merge's merge_into is not an open incident on the same "
                         "partition inside the actor's scope"),
    "internal_error": ("every stage", "the stage failed on this record (exception type in the "
                       "reason); the record is kept here and the stage went on"),
}
