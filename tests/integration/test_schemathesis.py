"""The HTTP API against its own OpenAPI document: schemathesis generates requests for every
operation of /api/openapi.yaml (its schemas refer to the served /schemas/*.json) and sends them
to a real `gridwatch web` on the embedded broker, with an admin token.

Bounded and deterministic: at most 25 examples per operation, derandomized, about 60 s in all.
Checked: no 5xx, every status code and content type is one the document lists. The live stream
(/api/v1/stream) is left out: it never ends."""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, status_code_conformance

from tests.integration.test_web_api import TOKENS, server  # noqa: F401  (the `server` fixture)

pytestmark = [pytest.mark.integration]  # not `engines`: the embedded broker only

MAX_EXAMPLES = 25
BUDGET_S = 60.0
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]


@pytest.fixture(autouse=True)
def _links_enabled(monkeypatch):
    """Before `server` starts: action links on, so /api/v1/act/{token} checks real links (without
    a key it answers a documented 503 to everything, which `not_a_server_error` counts)."""
    monkeypatch.setenv("GRIDWATCH_LINK_KEY", "schemathesis-link-key-0123456789")


def test_every_operation_answers_as_documented(server):  # noqa: F811
    api, _, _ = server
    base = f"http://127.0.0.1:{api.port}"
    schema = schemathesis.openapi.from_url(f"{base}/api/openapi.yaml")
    auth = {"Authorization": f"Bearer {TOKENS['admin']}"}
    deadline = time.monotonic() + BUDGET_S
    ran: list[str] = []
    calls: dict[str, int] = {}
    failures: list[str] = []
    for result in schema.exclude(path="/api/v1/stream").get_all_operations():
        op = result.ok()
        if time.monotonic() > deadline:
            break

        @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck), print_blob=False)
        @given(case=op.as_strategy())
        def run(case: schemathesis.Case) -> None:
            if time.monotonic() > deadline:
                return
            calls[case.operation.label] = calls.get(case.operation.label, 0) + 1
            case.call_and_validate(base_url=base, headers=auth, checks=CHECKS, timeout=10)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # one failing operation hides no other
            failures.append(f"{op.label}: {type(exc).__name__}: {str(exc)[:1500]}")
        ran.append(op.label)
    print("schemathesis calls per operation:", calls)
    assert len(ran) >= 10 and sum(calls.values()) >= 5 * len(ran), calls
    assert not failures, "\n\n".join(failures)
