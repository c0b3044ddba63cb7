"""The phone page behind an action link (手机处置页): what happened, where, the evidence, the
deadline and the ladder so far, and big buttons 签收 / 到场 / 办结 / 批注 — from the link alone.

Routes (no bearer token: the signed link is the credential, `pipeline.delivery.links`):

- ``GET /act/{token}``: the page (static HTML and JS; it reads the token from its own address).
- ``GET /api/v1/act/{token}``: the incident as the page shows it: names of the grid, village
  and town (from the atlas), the grid's outline for a small map, the timeline, the deadline,
  what this person may do now.
- ``POST /api/v1/act/{token}`` ``{"action": ..., "reason": ...}``: writes the command through
  the same path and checks as the API (command schema, the incident's state, idempotent id);
  the worker applies the person's scope as for any command.

Refusals are readable: 403 a forged or damaged link, 410 expired, 409 already used for that
action or the incident moved on (its state says which), 404 the incident is gone.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any

import orjson
import shapely
from aiohttp import web

from pipeline.delivery.links import ActionLink, LinkError, read_link
from pipeline.envelope import iso_ms, make_event, validator
from pipeline.gate import sign_command
from pipeline.incident.lifecycle import ALLOWED

PAGE = "act.html"
NEEDS_TEXT = frozenset({"resolve", "comment"})  # 办结 says how; a comment is its text
USED_LIMIT = 50_000


class UsedLinks:
    """(link nonce, action) pairs already used, newest last, bounded."""

    def __init__(self, limit: int = USED_LIMIT) -> None:
        self.limit, self._seen = limit, OrderedDict[tuple[str, str], int]()

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def add(self, key: tuple[str, str]) -> None:
        self._seen[key] = 1
        while len(self._seen) > self.limit:
            self._seen.popitem(last=False)


def _outline(geometry: Any) -> list[list[list[float]]]:
    """The grid's outer rings, simplified and rounded, for the page's small SVG map."""
    geom = shapely.simplify(geometry, geometry.length / 400 if geometry.length else 0)
    polys = getattr(geom, "geoms", [geom])
    return [[[round(x, 6), round(y, 6)] for x, y in p.exterior.coords] for p in polys
            if hasattr(p, "exterior")]


def register(app: web.Application, ctx: Any, static_dir: Any, send: Any, problem_cls: Any) -> None:
    """Add the action-link routes to the web application."""
    used = UsedLinks()
    shapes = {gid: (name, geom) for gid, name, _, geom in ctx.shapes.features}
    names: dict[str, str] = getattr(ctx.shapes, "names", {})

    def link_of(request: web.Request) -> ActionLink:
        try:
            return read_link(ctx.settings.link_key or "", request.match_info["token"], int(time.time()))
        except LinkError as exc:
            raise problem_cls(exc.status, exc.reason)

    def incident_of(link: ActionLink) -> dict:
        inc = ctx.board.incidents.get(link.incident_id)
        if inc is None:
            raise problem_cls(404, "this incident is no longer on the board (ended and archived)")
        return inc

    async def page(request: web.Request) -> web.FileResponse:
        # always the page: it asks the API and shows the reason a link cannot be used
        return web.FileResponse(static_dir / PAGE, headers={"Cache-Control": "no-store",
                                                           "Referrer-Policy": "no-referrer"})

    async def data(request: web.Request) -> web.Response:
        link = link_of(request)
        inc = incident_of(link)
        path = list(inc.get("path") or [inc["grid_id"]])
        grid = shapes.get(inc["grid_id"])
        may = [a for a in link.actions if inc.get("state") in ALLOWED.get(a, ())
               and (link.nonce, a) not in used]
        body = {"incident": inc, "where": [{"code": c, "name": names.get(c) or c} for c in path],
                "outline": _outline(grid[1]) if grid else [],
                "timeline": list(ctx.board.timelines.get(link.incident_id, ())),
                "person": link.person, "unit": link.unit, "may": may,
                "expires_at": iso_ms(link.expires_s * 1000)}
        return web.Response(body=orjson.dumps(body), content_type="application/json",
                            headers={"Cache-Control": "no-store"})

    async def act(request: web.Request) -> web.Response:
        from pipeline.web.server import _json_body

        link = link_of(request)
        body = await _json_body(request)
        action, reason = body.get("action"), body.get("reason")
        if not isinstance(action, str) or action not in link.actions:
            raise problem_cls(400, f"action: this link allows {', '.join(link.actions)}")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 2000):
            raise problem_cls(400, "reason: a text of at most 2000 characters")
        if action in NEEDS_TEXT and not (reason or "").strip():
            raise problem_cls(400, f"reason: {action} needs a few words (what was done)")
        key = (link.nonce, action if action != "comment" else
               "comment:" + hashlib.sha256((reason or "").encode()).hexdigest()[:12])
        if key in used:
            raise problem_cls(409, f"this link was already used to {action}")
        inc = incident_of(link)
        if inc.get("state") not in ALLOWED[action]:
            raise problem_cls(409, f"the incident moved on: it is {inc.get('state')} now")
        cid = link.command_id(key[1].replace(":", "-"))
        now = ctx.clock()
        cmd = {"command_id": cid, "incident_id": link.incident_id, "action": action,
               "actor": link.person, "scope": link.unit, "at": iso_ms(now),
               **({"reason": reason} if reason else {})}
        try:
            validator("command.json")(cmd)  # what the worker will check, checked here first
        except Exception as exc:
            raise problem_cls(400, f"command: {getattr(exc, 'message', exc)}")
        ev = make_event("gridwatch.command.v1", cid, cmd["at"], cmd, subject=link.incident_id,
                        source=f"gridwatch/web/link/{link.person}")
        if ctx.settings.command_key:
            ev = sign_command(ctx.settings.command_key, ev)
        await send(ctx, ctx.settings.topic("commands.v1"), orjson.dumps(ev),
                   link.incident_id.encode(), now)
        used.add(key)
        return web.Response(body=orjson.dumps({"accepted": cid, "action": action}), status=202,
                            content_type="application/json")

    app.router.add_get("/act/{token}", page, name="act_page")
    app.router.add_get("/api/v1/act/{token}", data, name="act_data")
    app.router.add_post("/api/v1/act/{token}", act, name="act_do")
