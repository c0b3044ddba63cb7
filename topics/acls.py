"""Kafka principals and ACLs (访问控制) by role, from the topic registry.

One principal per role; each may read and write only the topics its processes need, so an IoT
platform's credentials cannot act on incidents, redirect rosters or page people:

| role | writes | reads | consumer groups |
|---|---|---|---|
| ``ingest`` (IoT platforms, grid-worker apps) | reports, pings | – | – |
| ``web`` (``gridwatch web``) | reports, commands | the board's topics | – |
| ``worker`` (``gridwatch worker``) | what the stages emit | their inputs | ``<app_id>*`` |
| ``notifier`` | notifications, dlq | escalations, rosters, notifications | ``<app_id>-notifier`` |
| ``archiver`` | – | every topic | ``<app_id>-archive`` |
| ``admin`` (ops: registries, rosters, topics) | a super user of the cluster | | |

Every role may DESCRIBE every registry topic (metadata: partitions, offsets). Provisioned by
``gridwatch topics create --acls`` as the admin principal; a role's principal is
``User:<role>`` unless ``--principal role=name`` says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from topics.registry import TOPICS

BOARD = ("incidents.v1", "escalations.v1", "kpis.v1", "located.v1", "dlq.v1")
WORKER_READS = ("reports.v1", "pings.v1", "devices.v1", "subjects.v1", "located.v1", "clock.v1",
                "alerts.v1", "levels.v1", "commands.v1", "incident-commands.v1", "kpi-deltas.v1")
WORKER_WRITES = ("located.v1", "unlocated.v1", "dlq.v1", "alerts.v1", "levels.v1", "clock.v1",
                 "escalations.v1", "incidents.v1", "incident-commands.v1", "kpi-deltas.v1", "kpis.v1")


@dataclass(frozen=True)
class Role:
    name: str
    writes: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    group_prefix: str | None = None  # `{app_id}` is replaced by the deployment's app id


ROLES: tuple[Role, ...] = (
    Role("ingest", writes=("reports.v1", "pings.v1")),
    Role("web", writes=("reports.v1", "commands.v1"), reads=BOARD),
    Role("worker", writes=WORKER_WRITES, reads=WORKER_READS, group_prefix="{app_id}"),
    Role("notifier", writes=("notifications.v1", "dlq.v1"),
         reads=("escalations.v1", "rosters.v1", "notifications.v1"), group_prefix="{app_id}-notifier"),
    Role("archiver", reads=tuple(t.name for t in TOPICS), group_prefix="{app_id}-archive"),
)


def planned(prefix: str, app_id: str, principals: dict[str, str] | None = None) -> list[tuple]:
    """(principal, resource type, resource name, pattern, operation) for every role."""
    principals = principals or {}
    out: list[tuple] = []
    for role in ROLES:
        who = f"User:{principals.get(role.name, role.name)}"
        for t in TOPICS:
            out.append((who, "topic", prefix + t.name, "literal", "describe"))
        out += [(who, "topic", prefix + name, "literal", "write") for name in role.writes]
        out += [(who, "topic", prefix + name, "literal", "read") for name in role.reads]
        if role.group_prefix:
            out.append((who, "group", role.group_prefix.format(app_id=app_id), "prefixed", "read"))
    return out


def provision(admin: Any, prefix: str, app_id: str,
              principals: dict[str, str] | None = None) -> int:
    """Create the ACLs (idempotent: Kafka keeps one of each); returns how many were asked for."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    kinds = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
    patterns = {"literal": ACLResourcePatternType.LITERAL, "prefixed": ACLResourcePatternType.PREFIXED}
    acls = [ACL(principal=who, host="*", operation=getattr(ACLOperation, op.upper()),
                permission_type=ACLPermissionType.ALLOW,
                resource_pattern=ResourcePattern(kinds[kind], name, patterns[pattern]))
            for who, kind, name, pattern, op in planned(prefix, app_id, principals)]
    result = admin.create_acls(acls)
    failed = result.get("failed") if isinstance(result, dict) else None
    if failed:
        acl, err = failed[0]
        raise RuntimeError(f"the broker refused an ACL ({acl.principal} {acl.operation.name} "
                           f"{acl.resource_pattern.resource_name}): {err}")
    return len(acls)
