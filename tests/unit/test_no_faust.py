"""The pure core and the tools that run without a worker load without faust: the replayer and
archive (post-mortems on a laptop), the notifier (its own service), the detectors and incidents."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

BLOCK = """
import importlib.abc, sys
class NoFaust(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("faust", "mode"):
            raise ImportError(f"{name} imported")
sys.meta_path.insert(0, NoFaust())
"""

MODULES = ("pipeline.replay", "pipeline.archive", "pipeline.delivery.service", "pipeline.whatif",
           "pipeline.detect.host", "pipeline.detect.wiring", "pipeline.detect.plugins",
           "pipeline.incident.host", "pipeline.incident.wiring", "pipeline.delivery.channels",
           "geo.locate", "topics.admin", "ops.replay")


def test_replay_archive_notifier_and_the_core_load_without_faust():
    code = BLOCK + "".join(f"import {m}\n" for m in MODULES) + "print('ok')"
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_the_blocker_catches_a_faust_import():
    res = subprocess.run([sys.executable, "-c", BLOCK + "import pipeline.app"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "faust imported" in res.stderr
