"""Signed action links (行动链接): capabilities in a message that let one person act on one
incident from the message alone, as PagerDuty or Grafana OnCall let people acknowledge.

A link names one incident, one person (their roster id, never a name or a number), the unit
they answer for (the command's scope), the actions they may take and an expiry; it is signed
with the deployment's ``GRIDWATCH_LINK_KEY`` (HMAC-SHA256). The web server checks the
signature and the expiry, writes the command through the same path and checks as the API, and
refuses readably when the link is expired, already used for that action, or the incident moved
on. Opening a link (GET) never acts: mail scanners fetch links; only a tap on the page does.

    token = base64url(payload JSON) "." base64url(HMAC-SHA256(key, payload))

Each link's ``n`` (nonce) is derived from the notification id, so the command a tap writes has
a deterministic id ``link-<nonce>-<action>``: a second tap is the same command (applied once).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import orjson

from pipeline.errors import GridwatchError

DEFAULT_ACTIONS = ("acknowledge", "arrive", "resolve", "comment")
MIN_VALID_S = 24 * 3600  # a link lives until the incident's next deadline or 24 h, the later
MAX_TOKEN = 2048


class LinkError(GridwatchError):
    """A link that cannot be used; `status` is the HTTP answer, the message says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True, slots=True)
class ActionLink:
    incident_id: str
    person: str  # roster id
    unit: str  # the unit the person answers for: the command's scope
    actions: tuple[str, ...]
    expires_s: int  # Unix seconds
    nonce: str

    def command_id(self, action: str) -> str:
        return f"link-{self.nonce}-{action}"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def nonce_for(notification_id: str) -> str:
    return hashlib.sha256(notification_id.encode()).hexdigest()[:16]


def expiry(deadline_s: int | None, sent_s: int) -> int:
    """The incident's next deadline or 24 h after sending, whichever is later."""
    return max(deadline_s or 0, sent_s + MIN_VALID_S)


def sign_link(key: str, link: ActionLink) -> str:
    payload = orjson.dumps({"i": link.incident_id, "p": link.person, "u": link.unit,
                            "a": list(link.actions), "e": link.expires_s, "n": link.nonce})
    mac = hmac.new(key.encode(), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def read_link(key: str, token: str, now_s: int) -> ActionLink:
    """The link a token stands for, or `LinkError` (403 forged or malformed, 410 expired)."""
    if not key:
        raise LinkError(503, "action links are not enabled here (set GRIDWATCH_LINK_KEY)")
    try:
        if len(token) > MAX_TOKEN or token.count(".") != 1:
            raise ValueError("shape")
        body, mac = token.split(".")
        payload, given = _unb64(body), _unb64(mac)
        want = hmac.new(key.encode(), payload, hashlib.sha256).digest()
        if not hmac.compare_digest(given, want):
            raise ValueError("signature")
        d = orjson.loads(payload)
        link = ActionLink(str(d["i"]), str(d["p"]), str(d["u"]), tuple(str(a) for a in d["a"]),
                          int(d["e"]), str(d["n"]))
    except (ValueError, KeyError, TypeError, UnicodeError, orjson.JSONDecodeError):
        raise LinkError(403, "链接无效 (this link is not valid: damaged or not from this command "
                             "center)")
    if now_s > link.expires_s:
        raise LinkError(410, "链接已过期,请联系指挥中心重新发送 (this link has expired; ask the "
                             "command center for a new one: gridwatch link)")
    return link


def link_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/act/{token}"
