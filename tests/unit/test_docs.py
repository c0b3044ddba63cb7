"""README.md is one screen; everything else is in docs/*.md, linked, self-contained, and the
README's snippets are written against the real topics, envelopes and schemas."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
import types
from datetime import UTC, datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", _text(README), flags=re.M | re.S)


def _links(path: Path) -> list[str]:
    return [m for m in LINK.findall(_text(path)) if not re.match(r"[a-z][a-z0-9+.-]*:", m)]


def test_the_readme_is_one_screen():
    assert len(_text(README).splitlines()) <= 160


def test_every_docs_file_is_linked_from_the_readme_and_every_link_exists():
    linked = {(README.parent / link.split("#")[0]).resolve() for link in _links(README)
              if link.startswith("docs/")}
    assert linked, "the README links no docs"
    assert all(p.is_file() for p in linked), sorted(str(p) for p in linked if not p.is_file())
    assert {p.resolve() for p in DOCS} == linked


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_no_outside_files_or_work_items(path):
    text = _text(path).lower()
    assert "../shared" not in text
    assert "issue" not in text


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_every_relative_link_resolves_inside_the_repo(path):
    for link in _links(path):
        target = link.split("#")[0]
        if not target:
            continue
        resolved = (path.parent / target).resolve()
        assert resolved.is_relative_to(REPO), link
        assert resolved.exists(), f"{path.name}: {link}"


def test_the_moved_sections_keep_their_headings():
    where = {"architecture.md": ["## Architecture", "### The live clock"],
             "configuration.md": ["## Configuration", "## Commands"],
             "topics-and-schemas.md": ["## Topics and schemas"],
             "detectors.md": ["## Detectors", "### Recovery"],
             "incidents.md": ["## Incidents"], "delivery.md": ["## Delivery", "### Webhooks"],
             "command-center.md": ["## Command center"],
             "runbooks.md": ["## Runbook: archive, replay, what-if", "## Runbook: crash recovery",
                             "## Runbook: the dead-letter topic", "## Bad input"],
             "security.md": ["## Security model"], "grids.md": ["## Grids"],
             "benchmarks.md": ["## Benchmarks"], "extending.md": ["## Extending"],
             "development.md": ["## Development"]}
    for name, headings in where.items():
        text = _text(REPO / "docs" / name)
        assert all(re.search(rf"^{re.escape(h)}", text, re.M) for h in headings), name


def test_the_python_snippets_parse_and_import_real_modules():
    blocks = _blocks("python")
    assert len(blocks) >= 2
    for code in blocks:
        tree = ast.parse(compile(code, "README.md", "exec", ast.PyCF_ONLY_AST))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert importlib.util.find_spec(name.split(".")[0]) is not None, name


def _run_with_fake_kafka(code: str, monkeypatch, **classes) -> dict:
    """Run a README snippet with kafka-python's classes replaced by recording fakes."""
    fake = types.ModuleType("kafka")
    for name, cls in classes.items():
        setattr(fake, name, cls)
    monkeypatch.setitem(sys.modules, "kafka", fake)
    monkeypatch.setenv("GRIDWATCH_BROKER", "127.0.0.1:9092")
    monkeypatch.delenv("GRIDWATCH_TOPIC_PREFIX", raising=False)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # the README's own snippet
    return scope


def test_the_ping_snippet_sends_a_valid_ping_to_the_default_topic(monkeypatch):
    from pipeline.envelope import decode, parse_time
    from pipeline.settings import Settings

    sent = []

    class Producer:
        def __init__(self, **kw):
            assert kw["bootstrap_servers"] == "127.0.0.1:9092"

        def send(self, topic, key=None, value=None, **kw):
            sent.append((topic, key, value))

        def flush(self):
            pass

    (code,) = [b for b in _blocks("python") if "KafkaProducer" in b]
    _run_with_fake_kafka(code, monkeypatch, KafkaProducer=Producer)
    ((topic, key, value),) = sent
    assert topic == Settings.from_env().topic("pings.v1") == "gridwatch.pings.v1"
    doc = decode("pings.v1", value, 65_536)  # envelope.json, the type, ping.json
    assert key == doc["data"]["device_id"].encode()
    observed = parse_time(doc["data"]["observed_at"], "observed_at")
    assert abs((datetime.now(UTC) - observed).total_seconds()) < 60


def test_the_escalation_snippet_reads_the_default_topic(monkeypatch, capsys):
    from pipeline.envelope import make_event
    from pipeline.settings import Settings

    data = {"incident_id": "g1~inactivity:s1~1", "step": 1, "transition": "dispatched",
            "level": "grid_worker", "to": ["g1"], "at": "2026-07-01T12:00:00.000Z"}
    record = types.SimpleNamespace(value=json.dumps(make_event(
        "gridwatch.escalation.v1", "g1~inactivity:s1~1:1", data["at"], data)).encode())

    class Consumer:
        def __init__(self, *topics, **kw):
            assert topics == (Settings.from_env().topic("escalations.v1"),)

        def __iter__(self):
            return iter([record])

    (code,) = [b for b in _blocks("python") if "KafkaConsumer" in b]
    _run_with_fake_kafka(code, monkeypatch, KafkaConsumer=Consumer)
    assert "g1~inactivity:s1~1 dispatched grid_worker" in capsys.readouterr().out


def test_the_curl_report_is_a_valid_report_to_the_api():
    from pipeline.envelope import validator

    (block,) = [b for b in _blocks("sh") if "/api/v1/reports" in b]
    assert "Authorization: Bearer" in block and "-X POST" in block
    raw = re.search(r"-d '(\{.*?\})'\n", block, re.S).group(1)  # the shell's quoting undone:
    raw = raw.replace("'\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"'", "2026-07-01T08:00:00Z")
    report = json.loads(raw)
    validator("report.json")(report)
    assert any("/api/v1/stream" in b and "curl -N" in b for b in _blocks("sh"))
