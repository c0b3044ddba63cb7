"""The demo's duty desk (值班台): a simulated command-center operator using the HTTP API.

It polls the open incidents and works most of them through their lifecycle - acknowledge,
resolve with a reason, verify (核查结案) - with the same API calls a dashboard makes, so the demo
shows whole lifecycles and the KPIs they produce. One incident in `LEAVE_ONE_IN` (chosen by a
hash of its id, so the choice is stable) is left alone to show escalation up the grid's parents.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import zlib
from collections import Counter
from urllib.parse import quote, urlsplit

LEAVE_ONE_IN = 3
NEXT = {"dispatched": ("acknowledge", None), "acknowledged": ("resolve", "demo: checked on site"),
        "on_site": ("resolve", "demo: checked on site"), "resolved": ("verify", None)}


def left_alone(incident_id: str) -> bool:
    """Whether the desk leaves this incident unanswered (stable across runs)."""
    return zlib.crc32(incident_id.encode()) % LEAVE_ONE_IN == 0


class DutyDesk:
    """Works open incidents through the API every `every_s` seconds until `stop` is set."""

    def __init__(self, url: str, token: str, stop: threading.Event, every_s: float = 0.5) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token, self.stop, self.every_s = token, stop, every_s
        self.sent: Counter = Counter()  # accepted commands by action
        self._accepted: set[str] = set()  # a command the board has not caught up with is sent again
        self.refused: Counter = Counter()  # HTTP status of refused ones (409: state moved on)
        self.errors = 0
        self.last_refusal: str | None = None

    def _call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        c = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            headers = {"Authorization": f"Bearer {self.token}"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            return r.status, json.loads(r.read() or b"{}")
        finally:
            c.close()

    def step(self) -> None:
        """One pass: the next command for every open or resolved incident the desk works."""
        for status in ("open", "resolved"):
            code, body = self._call("GET", f"/api/v1/incidents?status={status}&limit=1000")
            if code != 200:
                self.refused[code] += 1
                continue
            for inc in body.get("incidents", []):
                iid, state = inc["incident_id"], inc.get("state")
                if left_alone(iid) or state not in NEXT:
                    continue
                action, reason = NEXT[state]
                kids = inc.get("children")
                if action == "verify" and kids and kids.get("done", 0) < kids.get("total", 0):
                    continue  # a zone incident closes after its grids' incidents (children_open)
                digest = hashlib.sha1(iid.encode()).hexdigest()[:24]  # ids allow no "~"
                cmd = {"action": action, "command_id": f"demo-{action}-{digest}"}
                if reason:
                    cmd["reason"] = reason
                code, answer = self._call("POST", f"/api/v1/incidents/{quote(iid, safe='')}/commands", cmd)
                if code == 202:
                    if cmd["command_id"] not in self._accepted:  # the same id: applied once
                        self._accepted.add(cmd["command_id"])
                        self.sent[action] += 1
                else:
                    self.refused[code] += 1
                    self.last_refusal = str(answer.get("error"))[:200]

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            try:
                self.step()
            except (OSError, ValueError):  # the server is starting or stopping
                self.errors += 1

    def summary(self) -> dict:
        return {"commands": dict(sorted(self.sent.items())), "refused": dict(sorted(self.refused.items())),
                "last_refusal": self.last_refusal, "connection_errors": self.errors,
                "left_alone": f"1 in {LEAVE_ONE_IN}"}
