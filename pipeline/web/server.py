"""The HTTP side (aiohttp): REST API, live stream (SSE), dashboard, health and metrics.

Every route but ``/healthz`` and ``/readyz`` needs a bearer token (`pipeline.web.auth`); the
dashboard's static files (HTML, JS, CSS, no data) are public so a browser can load the page that
asks for a token. Routes and their roles are in `ROUTES` and ``openapi.yaml``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_urldispatcher import _default_expect_handler

from pipeline.envelope import STRUCTURED, iso_ms, make_event, parse_time, validator
from pipeline.errors import Rejected
from pipeline.gate import sign_command
from pipeline.incident.lifecycle import ALLOWED
from pipeline.logs import get_logger
from pipeline.settings import Settings, aiokafka_config, durable_producer
from pipeline.web.auth import Principal, TokenBook
from pipeline.web.board import COALESCED, FOLLOWED, Board, BoardFollower, Subscriber
from pipeline.web.grids import GridShapes
from pipeline.web.layers import KINDS, MapLayers
from pipeline.web.metrics import Metrics
from topics.registry import SCHEMA_DIR, SCHEMA_PATH

STATIC = Path(__file__).parent / "static"
OPENAPI = Path(__file__).parent / "openapi.yaml"
MAX_BODY = 64 * 1024
IDEMPOTENCY_KEYS = 50_000  # command ids remembered with their command's digest (an LRU)
#: what a client may put in a command body; the server sets incident_id, actor, scope and at
COMMAND_BODY = ("action", "reason", "assignee", "command_id", "merge_into")
NEEDS_REASON = frozenset({"cancel", "merge"})  # as `apply_command` refuses them without one
COMMAND_SCHEMA = orjson.loads((SCHEMA_DIR / "command.json").read_bytes())
ID_PATTERN = re.compile(COMMAND_SCHEMA["properties"]["command_id"]["pattern"].strip("^$"))
ALL_READERS = ("admin", "command_center", "responder")
ROUTES: dict[str, tuple[str, ...]] = {  # route name -> roles allowed
    "me": ("admin", "command_center", "responder", "ingest"),
    "post_report": ("admin", "ingest"),
    "incidents": ALL_READERS, "incident": ALL_READERS, "command": ALL_READERS,
    "grids": ALL_READERS, "grid_status": ALL_READERS, "kpis": ALL_READERS, "reports": ALL_READERS,
    "stream": ALL_READERS, "metrics": ("admin", "command_center"), "names": ALL_READERS,
    "layers": ALL_READERS,
}
log = get_logger(component="web")
#: on every response (`_security_headers`); the dashboard loads only its own files (Leaflet is
#: vendored, no map tiles, no inline scripts or style elements; Leaflet's element.style writes
#: are CSSOM, which style-src does not govern) and draws the grids as SVG
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
CTX: web.AppKey[WebContext] = web.AppKey("gridwatch", object)  # type: ignore[arg-type]
PRINCIPAL = web.RequestKey("principal", Principal)  # who the bearer token says the caller is


def problem(status: int, reason: str, **extra: Any) -> web.Response:
    """An error body a person can read: {"error": ..., "status": ...}. Undecodable bytes a client
    sent (surrogate escapes in headers or the path) are shown as escapes, never a failure."""
    reason = reason.encode("utf-8", "backslashreplace").decode()
    return web.json_response({"error": reason, "status": status, **extra}, status=status,
                             dumps=lambda o: orjson.dumps(o).decode())


def ok(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class TokenBucket:
    """Intake rate limit per principal: `rate` requests a second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.state: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds to wait."""
        now = self.clock()
        tokens, last = self.state.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1:
            self.state[key] = (tokens - 1, now)
            return 0.0
        self.state[key] = (tokens, now)
        return (1 - tokens) / self.rate


class RecentKeys:
    """The last `limit` command ids (``Idempotency-Key``) with a digest of the command each named:
    the same id with the same command is a retry; with another command, a client's mistake."""

    def __init__(self, limit: int = IDEMPOTENCY_KEYS) -> None:
        self.limit = limit
        self._digests: OrderedDict[str, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._digests)

    def __contains__(self, key: object) -> bool:
        return key in self._digests

    def claim(self, key: str, digest: bytes) -> bool:
        """False when `key` names another command; else remember it (as the newest) and True."""
        if self._digests.get(key, digest) != digest:
            return False
        self._digests[key] = digest
        self._digests.move_to_end(key)
        while len(self._digests) > self.limit:
            self._digests.popitem(last=False)
        return True


@dataclass
class WebContext:
    settings: Settings
    tokens: TokenBook
    board: Board
    shapes: GridShapes
    metrics: Metrics
    intake: TokenBucket
    clock: Callable[[], int]  # ms: when a person's command or report arrives
    producer: Any = None
    topics_ok: bool | None = None
    follower: BoardFollower | None = None
    tasks: list = field(default_factory=list)
    keys: RecentKeys = field(default_factory=RecentKeys)
    layers: MapLayers = field(default_factory=lambda: MapLayers(None, {}))
    command_rate: TokenBucket | None = None  # per token; None: from the settings
    streams: dict[str, int] = field(default_factory=dict)  # token name -> open live streams

    def __post_init__(self) -> None:
        if self.command_rate is None:
            self.command_rate = TokenBucket(self.settings.command_rate, self.settings.command_burst)


def wall_clock() -> int:
    return int(time.time() * 1000)


def _principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def _authorize(ctx: WebContext, request: web.Request, route: str) -> Principal:
    """The caller of a route that needs a token; 401 without a known one, 403 for another role."""
    who = ctx.tokens.lookup(request.headers.get("Authorization"))
    if who is None:
        raise _Problem(401, "a valid bearer token is required (Authorization: Bearer ...)")
    if who.role not in ROUTES[route]:
        raise _Problem(403, f"role {who.role} may not use {route}")
    return who


def _auth_middleware(ctx: WebContext) -> Any:
    """Authorization, the one error policy (a `_Problem` anywhere becomes its readable error
    body) and the request metrics."""
    @web.middleware
    async def middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
        route = request.match_info.route.name
        started = time.perf_counter()
        status = 500
        try:
            try:
                if route in ROUTES:
                    request[PRINCIPAL] = _authorize(ctx, request, route)
                resp = await handler(request)
            except _Problem as p:
                resp = problem(p.status, p.reason, **p.extra)
                resp.headers.update(p.headers)
            status = resp.status
            return resp
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            ctx.metrics.http(route or "static", status, time.perf_counter() - started)
    return middleware


async def _json_body(request: web.Request) -> dict:
    """The whole body (however many writes it came in) as a JSON object; 413 over `MAX_BODY`."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _Problem(413, f"body of {request.content_length} bytes is over the {MAX_BODY}-byte limit")
    try:
        raw = await request.read()  # to the end; the app's client_max_size is MAX_BODY
    except web.HTTPRequestEntityTooLarge:
        raise _Problem(413, f"body is over the {MAX_BODY}-byte limit")
    except (HttpProcessingError, web.RequestPayloadError) as exc:  # e.g. gzip that is not gzip
        why = " ".join(str(exc).split("message:")[-1].split())
        raise _Problem(400, f"body cannot be read: {why[:200]}")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Problem(400, f"body is not JSON: {exc}")
    if not isinstance(body, dict):
        raise _Problem(400, "body must be a JSON object")
    return body


class _Problem(Exception):
    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers, self.extra = status, reason, headers or {}, extra


def _checked(check: Callable[[Any], Any], data: dict, where: str) -> None:
    """Run a compiled JSON Schema; 400 naming the field that fails it."""
    try:
        check(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        if exc.rule == "additionalProperties" and isinstance(exc.value, dict):
            extra = sorted(set(exc.value) - set(exc.definition.get("properties", {})))
            raise _Problem(400, f"{where}: unknown field(s) {', '.join(extra)}; allowed: "
                                f"{', '.join(exc.definition.get('properties', {}))}")
        field_name = exc.name.removeprefix("data").lstrip(".") or "body"
        raise _Problem(400, f"{where}: {exc.message.replace(exc.name, field_name, 1)}")


def _time_ms(value: str, name: str) -> int:
    """An ISO 8601 time with an offset, as epoch ms; 400 naming the field otherwise."""
    try:
        return int(parse_time(value, name).timestamp() * 1000)
    except Rejected as exc:
        raise _Problem(400, exc.reason)


def _check_observed(ctx: WebContext, observed: str) -> None:
    """What ingest refuses (`time_out_of_range`): too far ahead of or behind the time the record
    is stamped with, the API's clock."""
    t, now = _time_ms(observed, "observed_at"), ctx.clock()
    ahead, behind = ctx.settings.max_future_s, ctx.settings.max_past_s
    if t > now + ahead * 1000:
        raise _Problem(400, f"observed_at={observed} is more than {timedelta(seconds=ahead)} in the "
                            f"future of the server clock ({iso_ms(now)})")
    if t < now - behind * 1000:
        raise _Problem(400, f"observed_at={observed} is more than {timedelta(seconds=behind)} in the "
                            f"past of the server clock ({iso_ms(now)})")


def _command_body_check() -> Callable[[Any], Any]:
    """The command body a client may send: `COMMAND_BODY` with command.json's types, nothing else."""
    props = COMMAND_SCHEMA["properties"]
    return fastjsonschema.compile({"type": "object", "required": ["action"], "additionalProperties": False,
                                   "properties": {k: props[k] for k in COMMAND_BODY}})


def _zoom(request: web.Request) -> int:
    """The map zoom of a grids or layers request (0..20, default 12), else 400."""
    try:
        zoom = int(request.query.get("zoom", "12"))
    except ValueError:
        zoom = -1
    if not 0 <= zoom <= 20:
        raise _Problem(400, "zoom must be an integer 0..20")
    return zoom


def _command_id(body: dict, header: str | None) -> str | None:
    """The caller's id of this command: ``command_id`` in the body or the ``Idempotency-Key``."""
    if not header:
        return body.get("command_id")
    if not ID_PATTERN.fullmatch(header):
        raise _Problem(400, "Idempotency-Key header: use 1 to 64 of A-Z a-z 0-9 _ . : -")
    if body.get("command_id", header) != header:
        raise _Problem(400, "command_id and the Idempotency-Key header differ: send one, or the same")
    return header


def _digest(*parts: Any) -> bytes:
    return hashlib.sha256(orjson.dumps(parts)).digest()[:16]


def _admit(keys: RecentKeys, inc: dict, action: str, cid: str | None, digest: bytes) -> None:
    """409 when the incident's state does not allow the action, unless this is a retry of a
    command already taken (the board may show its effect by now); 422 when the command id was
    used for another command."""
    if (cid is None or cid not in keys) and inc.get("state") not in ALLOWED[action]:
        raise _Problem(409, f"cannot {action} an incident that is {inc.get('state')}")
    if cid is not None and not keys.claim(cid, digest):
        raise _Problem(422, f"command id {cid} was used for a different command: use a new "
                            "Idempotency-Key (or command_id) for a new command")


def _check_place(ctx: WebContext, who: Principal, report: dict) -> None:
    """403 when an ingest token bound to a unit posts a report located outside that unit
    (its subtree), as the worker will locate it; without an atlas the bound cannot be checked."""
    if not ctx.shapes.features:
        return
    from geo.coords import to_wgs84

    lon, lat = to_wgs84([report["lon"]], [report["lat"]], report.get("crs") or "wgs84")
    grid = ctx.shapes.grid_at(float(lon[0]), float(lat[0]))
    if grid is None or who.scope not in ctx.shapes.path_of(grid):
        raise _Problem(403, f"token {who.name} reports for unit {who.scope}; this report's place is "
                            f"{'outside every grid' if grid is None else 'in another unit'}")


async def _send(ctx: WebContext, topic: str, value: bytes, key: bytes, timestamp_ms: int) -> None:
    """Write one record; 503 (the client may retry) when the broker cannot take it now."""
    from aiokafka.errors import KafkaError

    if ctx.producer is None:
        raise _Problem(503, "the broker is not reachable yet: retry shortly")
    try:
        await ctx.producer.send_and_wait(topic, value, key=key, timestamp_ms=timestamp_ms,
                                         headers=STRUCTURED)
    except KafkaError as exc:
        log.warning("web_send_failed", topic=topic, error=type(exc).__name__)
        raise _Problem(503, f"the broker did not take the record ({type(exc).__name__}): retry shortly")


def build_app(ctx: WebContext) -> web.Application:
    """The aiohttp application over a context (tests build the context themselves)."""
    app = web.Application(middlewares=[_auth_middleware(ctx)], client_max_size=MAX_BODY)
    app[CTX] = ctx
    board, s = ctx.board, ctx.settings
    report_check, command_check, body_check = (validator("report.json"), validator("command.json"),
                                               _command_body_check())

    async def healthz(_: web.Request) -> web.Response:
        return ok({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        reasons = []
        if ctx.producer is None:  # reasons only: exception text (hosts, ports, versions) stays in
            reasons.append("broker not reachable")  # the server's log
        if ctx.topics_ok is False:
            reasons.append("topics missing or mis-partitioned (gridwatch topics describe)")
        if not board.ready:
            reasons.append("board catching up" + (" (its reader is retrying: see the server log)"
                                                  if ctx.follower and ctx.follower.error else ""))
        return ok({"ready": not reasons, "reasons": reasons}, 200 if not reasons else 503)

    async def me(request: web.Request) -> web.Response:
        who = _principal(request)
        return ok({"name": who.name, "role": who.role, "scope": who.scope,
                   "may_act": who.role in ROUTES["command"], "now": ctx.clock()})

    async def post_report(request: web.Request) -> web.Response:
        who = _principal(request)
        wait = ctx.intake.take(who.name)
        if wait:
            raise _Problem(429, "too many reports: slow down", {"Retry-After": str(max(1, round(wait)))},
                           retry_after_s=round(wait, 2))
        data = await _json_body(request)
        _checked(report_check, data, "report")
        if who.reporter_id is not None and data["reporter_id"] != who.reporter_id:
            raise _Problem(403, f"token {who.name} reports as reporter_id {who.reporter_id}, "
                                f"not {data['reporter_id']}")
        _check_observed(ctx, data["observed_at"])
        if who.role == "ingest" and who.scope:
            _check_place(ctx, who, data)
        ev = make_event("gridwatch.report.v1", f"report:{data['report_id']}", iso_ms(ctx.clock()), data,
                        source=f"gridwatch/web/{who.name}")
        await _send(ctx, s.topic("reports.v1"), orjson.dumps(ev), data["report_id"].encode(), ctx.clock())
        return ok({"accepted": data["report_id"], "topic": s.topic("reports.v1")}, 202)

    def _filters(request: web.Request) -> dict:
        q = request.query
        out: dict[str, Any] = {k: q.get(k) for k in ("unit", "status", "level", "kind", "category",
                                                      "severity")}
        for k in ("since", "until"):
            if q.get(k):
                out[k] = iso_ms(_time_ms(q[k], k))
        try:
            out["limit"] = min(max(int(q.get("limit", "200")), 1), 5000)
        except ValueError:
            raise _Problem(400, f"limit={q.get('limit')!r} is not a number")
        return out

    async def incidents(request: web.Request) -> web.Response:
        rows = board.incidents_for(_principal(request), **_filters(request))
        return ok({"incidents": rows, "count": len(rows)})

    def _visible_incident(request: web.Request) -> dict:
        inc = board.incidents.get(request.match_info["incident_id"])
        if inc is None or not _principal(request).may_see(inc.get("path") or []):
            # outside the caller's scope answers exactly as unknown: ids cannot be probed
            raise _Problem(404, f"no incident {request.match_info['incident_id'][:128]}")
        return inc

    async def incident(request: web.Request) -> web.Response:
        inc = _visible_incident(request)
        return ok({"incident": inc, "escalations": list(board.timelines.get(inc["incident_id"], ()))})

    async def command(request: web.Request) -> web.Response:
        who = _principal(request)
        wait = ctx.command_rate.take(who.name)  # type: ignore[union-attr]
        if wait:
            raise _Problem(429, "too many commands: slow down", {"Retry-After": str(max(1, round(wait)))},
                           retry_after_s=round(wait, 2))
        inc = _visible_incident(request)
        body = await _json_body(request)
        _checked(body_check, body, "command")
        action = body["action"]
        if action in NEEDS_REASON and not body.get("reason"):
            raise _Problem(400, f"reason: {action} needs one (a false alarm; the incident this one "
                                "duplicates)")
        if "merge_into" in body and action != "merge":
            raise _Problem(400, f"merge_into: only a merge names a target, not {action}")
        cid = _command_id(body, request.headers.get("Idempotency-Key"))
        digest = _digest(inc["incident_id"], who.name, action, body.get("reason"), body.get("assignee"),
                         body.get("merge_into"))
        _admit(ctx.keys, inc, action, cid, digest)
        cid = cid or f"web-{uuid.uuid4().hex}"
        path = inc.get("path") or [inc["grid_id"]]
        scope = who.scope if who.role == "responder" else path[0]
        now = ctx.clock()  # the record is stamped with it too: a replay orders the log by it
        data = {"command_id": cid, "incident_id": inc["incident_id"], "action": action,
                "actor": who.name, "scope": scope, "at": iso_ms(now),
                **{k: body[k] for k in ("reason", "assignee", "merge_into") if k in body}}
        _checked(command_check, data, "command")
        ev = make_event("gridwatch.command.v1", cid, data["at"], data, subject=inc["incident_id"],
                        source=f"gridwatch/web/{who.name}")
        if s.command_key:  # workers verify it: nobody else can write commands as a person
            ev = sign_command(s.command_key, ev)
        await _send(ctx, s.topic("commands.v1"), orjson.dumps(ev), inc["incident_id"].encode(), now)
        return ok({"accepted": cid, "incident_id": inc["incident_id"], "action": action}, 202)

    async def grids(request: web.Request) -> web.Response:
        zoom = _zoom(request)
        resp = web.Response(body=ctx.shapes.geojson(zoom, _principal(request)),
                            content_type="application/geo+json")
        resp.enable_compression()  # gzip or deflate when the browser asks: polygons shrink ~5x
        return resp

    async def layers(request: web.Request) -> web.Response:
        """One map layer (towns, villages, hazards, points, police) with its live state."""
        kind = request.match_info["kind"]
        if kind not in KINDS:
            raise _Problem(404, f"no layer {kind[:32]!r}; layers: {', '.join(KINDS)}")
        zoom = _zoom(request)
        resp = web.Response(body=ctx.layers.geojson(kind, zoom, _principal(request), board.incidents),
                            content_type="application/geo+json")
        resp.enable_compression()
        return resp

    async def names(request: web.Request) -> web.Response:
        """Names of the units the caller may see and their parents (镇, 村/社区, 网格), by code."""
        who = _principal(request)
        mine = set(ctx.shapes.path_of(who.scope)) if who.scope else set()
        rows = {c: n for c, n in ctx.shapes.names.items()
                if who.sees_all or c in mine or who.scope in ctx.shapes.path_of(c)}
        resp = ok({"names": rows})
        resp.enable_compression()
        return resp

    async def grid_status(request: web.Request) -> web.Response:
        return ok(board.worst_by_grid(_principal(request)))

    async def kpis(request: web.Request) -> web.Response:
        who = _principal(request)
        unit = request.query.get("unit")
        rows = {u: k for u, k in board.kpis.items()
                if who.may_see(ctx.shapes.path_of(u)) and (unit is None or u == unit)}
        if unit and not rows and not who.may_see(ctx.shapes.path_of(unit)):
            raise _Problem(403, f"unit {unit[:64]} is outside your grid subtree")
        return ok({"kpis": rows})

    async def reports(request: web.Request) -> web.Response:
        who = _principal(request)
        return ok({"reports": [r for r in reversed(board.reports) if who.may_see(r["path"])][:100]})

    async def stream(request: web.Request) -> web.StreamResponse:
        who = _principal(request)
        if ctx.streams.get(who.name, 0) >= s.streams_per_token:
            raise _Problem(429, f"token {who.name} has {s.streams_per_token} live streams open already: "
                                "close one first", {"Retry-After": "15"})
        ctx.streams[who.name] = ctx.streams.get(who.name, 0) + 1  # before the first await
        try:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            await resp.prepare(request)
        except BaseException:
            _stream_closed(ctx, who.name)
            raise
        sub = Subscriber(who)
        board.subscribers.add(sub)
        ctx.metrics.stream_clients.inc()
        try:
            await resp.write(b"event: hello\ndata: " + orjson.dumps({"name": who.name, "role": who.role})
                             + b"\n\n")
            while not sub.dropped:
                try:
                    item = await asyncio.wait_for(sub.queue.get(), 15)
                except TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    continue
                if item is None:  # the server is shutting down
                    break
                name, data = item
                if name == COALESCED:  # behind: the newest state of each incident, once
                    states, sub.latest = list(sub.latest.values()), {}
                    await resp.write(b"".join(b"event: incident\ndata: " + orjson.dumps(d) + b"\n\n"
                                              for d in states))
                    continue
                await resp.write(f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            board.subscribers.discard(sub)
            ctx.metrics.stream_clients.dec()
            _stream_closed(ctx, who.name)
        return resp

    async def metrics(_: web.Request) -> web.Response:
        body, ctype = await ctx.metrics.render(board, ctx)
        return web.Response(body=body, headers={"Content-Type": ctype})

    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def openapi(_: web.Request) -> web.FileResponse:
        return web.FileResponse(OPENAPI, headers={"Content-Type": "application/yaml"})

    r = app.router
    get, post = partial(r.add_get, expect_handler=_expect), partial(r.add_post, expect_handler=_expect)
    get("/healthz", healthz, name="healthz")
    get("/readyz", readyz, name="readyz")
    get("/metrics", metrics, name="metrics")
    get("/api/v1/me", me, name="me")
    post("/api/v1/reports", post_report, name="post_report")
    get("/api/v1/reports", reports, name="reports")
    get("/api/v1/incidents", incidents, name="incidents")
    get("/api/v1/incidents/{incident_id}", incident, name="incident")
    post("/api/v1/incidents/{incident_id}/commands", command, name="command")
    get("/api/v1/grids", grids, name="grids")
    get("/api/v1/layers/{kind}", layers, name="layers")
    get("/api/v1/names", names, name="names")
    get("/api/v1/grid-status", grid_status, name="grid_status")
    get("/api/v1/kpis", kpis, name="kpis")
    get("/api/v1/stream", stream, name="stream")
    get("/api/openapi.yaml", openapi, name="openapi")
    get(SCHEMA_PATH + "{name}", _schema, name="schema")  # public, as the static files: no data
    get("/", index, name="index")
    r.add_static("/static/", STATIC, name="static", expect_handler=_expect)
    from pipeline.web import actions

    actions.register(app, ctx, STATIC, _send, _Problem)  # /act/{token}: the signed-link page
    r.add_route("*", "/{tail:.*}", _unrouted, name="unrouted", expect_handler=_expect)  # the last

    app.on_response_prepare.append(_security_headers)
    app.on_startup.append(_start)
    app.on_shutdown.append(_close_streams)
    app.on_cleanup.append(_stop)
    return app


def _stream_closed(ctx: WebContext, name: str) -> None:
    left = ctx.streams.get(name, 0) - 1
    if left > 0:
        ctx.streams[name] = left
    else:
        ctx.streams.pop(name, None)


async def _security_headers(_: web.Request, response: web.StreamResponse) -> None:
    """`SECURITY_HEADERS` on every response the application sends (API, errors, static files,
    the live stream): a signal, not a middleware, so a response a handler prepares itself (the
    stream) and aiohttp's own answers carry them too."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` as aiohttp answers it; any other expectation a readable 417
    (aiohttp's own answer fails on bytes that are not UTF-8)."""
    if request.headers.get("Expect", "").lower() == "100-continue":
        return await _default_expect_handler(request)
    return problem(417, f"unknown Expect: {request.headers.get('Expect', '')[:64]}: only 100-continue")


#: the topics' JSON Schemas as served at /schemas/<name>.json: the files of topics/schemas, the one
#: source (their ``$id`` is that path; openapi.yaml and the envelopes' ``dataschema`` name it)
SCHEMAS = {p.name: p.read_bytes() for p in sorted(SCHEMA_DIR.glob("*.json"))}


async def _schema(request: web.Request) -> web.Response:
    body = SCHEMAS.get(request.match_info["name"])
    if body is None:
        raise _Problem(404, f"no such schema: {request.match_info['name'][:64]} (see /api/openapi.yaml)")
    return web.Response(body=body, content_type="application/schema+json")


async def _unrouted(request: web.Request) -> web.StreamResponse:
    """What aiohttp answers for a path no route has (404) or a method it lacks (405), but with
    `_expect` and a readable error body."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.name != "unrouted":
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        raise _Problem(405, f"{request.method} is not allowed here: use {', '.join(sorted(allowed))}",
                       {"Allow": ", ".join(sorted(allowed))})
    raise _Problem(404, f"no such route: {request.path[:200]}")


async def _start(app: web.Application) -> None:
    ctx: WebContext = app[CTX]
    if ctx.producer is None:
        ctx.tasks.append(asyncio.create_task(_connect(ctx)))
    names = {short: ctx.settings.topic(short) for short in FOLLOWED}
    ctx.follower = BoardFollower(ctx.board, names, aiokafka_config(ctx.settings),
                                 ctx.metrics.stream_latency.observe, ctx.settings.web_backlog)
    ctx.tasks.append(asyncio.create_task(_follow(ctx)))
    ctx.tasks.append(asyncio.create_task(_check_topics(ctx)))


async def _close_streams(app: web.Application) -> None:
    for sub in list(app[CTX].board.subscribers):
        sub.dropped = True
        with contextlib.suppress(asyncio.QueueFull):
            sub.queue.put_nowait(None)


async def _stop(app: web.Application) -> None:
    ctx: WebContext = app[CTX]
    for t in ctx.tasks:
        t.cancel()
    for t in ctx.tasks:
        with contextlib.suppress(BaseException):
            await t
    if ctx.producer is not None:
        await ctx.producer.stop()


async def _connect(ctx: WebContext) -> None:
    from aiokafka import AIOKafkaProducer

    while True:
        producer = AIOKafkaProducer(**aiokafka_config(ctx.settings),
                                    **durable_producer(ctx.settings), linger_ms=2)
        try:
            await producer.start()
            ctx.producer = producer
            return
        except Exception as exc:
            log.warning("web_broker_unreachable", error=type(exc).__name__)
            with contextlib.suppress(Exception):
                await producer.stop()
            await asyncio.sleep(2)


async def _follow(ctx: WebContext) -> None:
    while True:
        await ctx.follower.run()  # type: ignore[union-attr]
        log.warning("web_board_follower_stopped", error=ctx.follower.error)  # type: ignore[union-attr]
        await asyncio.sleep(2)


async def _check_topics(ctx: WebContext) -> None:
    from topics.admin import describe

    while True:
        if ctx.producer is None:  # not before the broker answers: a blocked admin thread would
            await asyncio.sleep(1)  # hold up the shutdown
            continue
        try:
            states = await asyncio.to_thread(describe, ctx.settings)
            ctx.topics_ok = all(st.ok for st in states)
        except Exception:
            ctx.topics_ok = False
        await asyncio.sleep(30)


def context_from(settings: Settings, tokens: TokenBook, clock: Callable[[], int] | None = None) -> WebContext:
    """The web context for these settings (atlas for the grid shapes, intake rate)."""
    from geo.layers import load_atlas

    atlas = load_atlas(settings.atlas) if settings.atlas else None
    shapes = GridShapes(atlas)
    board = Board()
    ctx = WebContext(settings, tokens, board, shapes, Metrics(), TokenBucket(settings.intake_rate,
                     settings.intake_burst), clock or _board_or_wall(board, settings))
    ctx.layers = MapLayers(atlas, shapes.paths)
    return ctx


def _board_or_wall(board: Board, settings: Settings) -> Callable[[], int]:
    """The API's clock: the wall clock, or (``GRIDWATCH_WEB_CLOCK=event``, for simulations and
    replays) the newest event time on the board, so commands fall in the simulated day."""
    if settings.web_clock == "wall":
        return wall_clock

    def newest() -> int:
        times = [e.get("at") for e in list(board.escalations)[-50:] if e.get("at")]
        if not times:
            return wall_clock()
        return int(parse_time(max(times), "at").timestamp() * 1000)
    return newest


def run_web(settings: Settings, tokens: TokenBook) -> None:
    """Serve until SIGINT/SIGTERM."""
    web.run_app(build_app(context_from(settings, tokens)), host=settings.web_host,
                port=settings.web_port, print=None, access_log=None, handle_signals=True,
                shutdown_timeout=5)
