"""The OpenAPI document is valid OpenAPI 3.1 (openapi-spec-validator), its `$ref`s to the topics'
JSON Schemas resolve (offline: against the server that serves both), and those schemas are served
at the path their `$id` names."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import orjson
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from jsonschema_path import SchemaPath
from openapi_spec_validator import OpenAPIV31SpecValidator

from pipeline.settings import Settings
from pipeline.web.auth import TokenBook
from pipeline.web.server import OPENAPI, build_app, context_from
from topics.registry import SCHEMA_DIR, SCHEMA_PATH, TOPICS

#: where the document is served; its `$ref`s (``/schemas/report.json``) resolve against it
SERVED_AT = "http://gridwatch.test/api/openapi.yaml"


def _external_refs(node: object) -> set[str]:
    if isinstance(node, dict):
        own = {node["$ref"]} if isinstance(node.get("$ref"), str) and not node["$ref"].startswith("#") \
            else set()
        return own.union(*(_external_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_external_refs(v) for v in node))
    return set()


def _validate(doc: dict, fetch: Callable[[str], dict]) -> list[str]:
    """openapi-spec-validator's errors, with every URI the document refers to read by `fetch`."""
    sp = SchemaPath.from_dict(doc, base_uri=SERVED_AT,
                              handlers={"http": fetch, "https": fetch, "file": fetch})
    return [str(e).splitlines()[0] for e in OpenAPIV31SpecValidator(sp).iter_errors()]


def _from_schema_dir(fetched: list[str]) -> Callable[[str], dict]:
    """What the server answers at /schemas/<name>.json, read from topics/schemas (no network)."""
    def fetch(uri: str) -> dict:
        fetched.append(uri)
        path = urlsplit(uri).path
        assert path.startswith(SCHEMA_PATH), f"{uri}: only the served schemas may be referred to"
        return orjson.loads((SCHEMA_DIR / path.removeprefix(SCHEMA_PATH)).read_bytes())
    return fetch


def test_the_document_is_valid_openapi_3_1_with_every_ref_resolved():
    doc = yaml.safe_load(OPENAPI.read_text())
    assert doc["openapi"].startswith("3.1.")
    fetched: list[str] = []
    assert _validate(doc, _from_schema_dir(fetched)) == []
    refs = _external_refs(doc)
    assert refs and all(r.startswith(SCHEMA_PATH) for r in refs), refs  # relative: no host named
    assert {urlsplit(u).path for u in fetched} == refs  # the validator followed every one
    assert "gridwatch.example" not in OPENAPI.read_text()


def test_the_validator_reads_the_referenced_schemas_too():
    """A broken schema file would be caught: the validator checks what the refs point at."""
    def broken(uri: str) -> dict:
        return {**_from_schema_dir([])(uri), "required": "report_id"}  # must be an array

    assert _validate(yaml.safe_load(OPENAPI.read_text()), broken)


def test_every_schema_files_id_is_the_path_it_is_served_at():
    app = build_app(context_from(Settings.from_env({}), TokenBook([])))
    (route,) = [r for r in app.router.routes() if r.name == "schema" and r.method == "GET"]
    files = sorted(SCHEMA_DIR.glob("*.json"))
    assert {t.schema for t in TOPICS} <= {p.name for p in files}
    for p in files:
        schema = orjson.loads(p.read_bytes())
        assert schema["$id"] == f"{SCHEMA_PATH}{p.name}", p.name
        assert route.resource.get_info()["formatter"].format(name=p.name) == schema["$id"]
        assert "gridwatch.example" not in p.read_text()
    assert {t.schema_path for t in TOPICS} <= {f"/schemas/{p.name}" for p in files}


@pytest.fixture
async def client():
    app = build_app(context_from(Settings.from_env({}), TokenBook([])))
    app.on_startup.clear()  # no broker: no follower, no topic checks
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_schemas_are_served_without_a_token(client):
    r = await client.get("/schemas/report.json")
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/schema+json")
    assert await r.read() == (SCHEMA_DIR / "report.json").read_bytes()
    assert orjson.loads(await r.read()) == orjson.loads((SCHEMA_DIR / "report.json").read_bytes())
    for name in ("nope.json", "report", "..%2Fregistry.py", "report.json.bak", "%00"):
        r = await client.get(f"/schemas/{name}")
        assert r.status == 404, name
        assert (await r.json())["status"] == 404
    assert (await client.get("/schemas/../topics/registry.py")).status == 404


async def test_the_served_document_validates_against_the_served_schemas(client):
    """What a client sees: the document from /api/openapi.yaml, its refs resolved against that
    URL and read from this server."""
    r = await client.get("/api/openapi.yaml")
    assert r.status == 200
    doc = yaml.safe_load(await r.text())
    base = str(client.make_url("/api/openapi.yaml"))
    served = {}
    for ref in _external_refs(doc):
        got = await client.get(urlsplit(urljoin(base, ref)).path)
        assert got.status == 200, ref
        served[ref] = orjson.loads(await got.read())

    def fetch(uri: str) -> dict:
        return served[urlsplit(uri).path]

    assert served and _validate(doc, fetch) == []
