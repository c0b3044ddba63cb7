"""Metric names the code defines (worker, notifier, archiver and web registries), and the
metric names a PromQL expression uses: for the alert rules and the Grafana dashboard tests."""

from __future__ import annotations

import re
from types import SimpleNamespace

_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
             "summary": ("_sum", "_count", "_created"), "gauge": ("",), "unknown": ("",)}
#: series Prometheus adds itself at scrape time
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def defined_metrics() -> set[str]:
    """Every series name the gridwatch registries can expose, with labelled metrics that have
    no sample yet included (read off the families, not the samples)."""
    from prometheus_client import REGISTRY

    import pipeline.telemetry  # noqa: F401  (registers the process metrics)
    from pipeline.web.metrics import Metrics

    web = Metrics()
    web._board.board = SimpleNamespace(dlq={}, records={}, open_counts=dict, breaches={})
    names: set[str] = set()
    for registry in (REGISTRY, web.registry):
        for fam in registry.collect():
            names.update(fam.name + s for s in _SUFFIXES.get(fam.type, ("",)))
    return {n for n in names if n.startswith("gridwatch_")}


def expr_metrics(expr: str) -> set[str]:
    """The metric names in a PromQL expression (gridwatch_* and the scrape series): strings and
    label matchers are removed first, so label values are not taken for names."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    found = set(re.findall(r"\bgridwatch_[a-z0-9_]+\b", bare))
    found |= {w for w in re.findall(r"\b[a-z_]+\b", bare) if w in SCRAPE_SERIES}
    return found
