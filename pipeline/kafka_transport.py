"""The faust transport gridwatch runs on: faust's aiokafka driver with durable producers.

faust turns on idempotence only inside transactions; gridwatch wants every write of a worker
acknowledged by all in-sync replicas (``acks=all``) and idempotent (a retried batch is written
once), without exactly-once transactions. Registered as the ``gridwatch://`` broker scheme
(the ``faust.transports`` entry point in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka


class Producer(faust_aiokafka.Producer):
    """faust's producer with ``acks=all`` and ``enable_idempotence`` always on."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport with the durable producer."""

    Producer = Producer
