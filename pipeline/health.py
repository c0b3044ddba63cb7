"""A worker's own health (存活): a heartbeat file its event loop rewrites every few seconds.

`gridwatch worker --check` (the container health check) reads it: healthy when it is younger
than ``--max-age`` seconds, so a worker whose loop is blocked, whose process hung or that never
joined its group reports unhealthy, not only a broker that is down. Wall time here is ops
metadata, never an input to a decision.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson

FILE = "worker-health.json"


def write_heartbeat(data_dir: str, partitions: list[int], extra: dict | None = None) -> None:
    """Atomically replace the heartbeat file."""
    path = Path(data_dir) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps({"at": time.time(), "pid": os.getpid(),
                                  "partitions": partitions, **(extra or {})}))
    tmp.replace(path)


def check_heartbeat(data_dir: str, max_age_s: float) -> tuple[bool, str]:
    """(healthy, one readable line)."""
    path = Path(data_dir) / FILE
    try:
        beat = orjson.loads(path.read_bytes())
        age = time.time() - float(beat["at"])
    except FileNotFoundError:
        return False, f"unhealthy: no heartbeat at {path} (worker not started, or not yet)"
    except (ValueError, KeyError, TypeError) as exc:
        return False, f"unhealthy: heartbeat {path} unreadable ({exc})"
    if age > max_age_s:
        return False, f"unhealthy: last heartbeat {age:.0f}s ago (limit {max_age_s:.0f}s)"
    return True, f"healthy: heartbeat {age:.0f}s ago, partitions {beat.get('partitions')}"
