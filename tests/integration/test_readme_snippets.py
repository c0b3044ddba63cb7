"""The README's snippets run as written against the embedded broker and a worker on the real
Song County boundary: the kafka-python ping is located, the curl report is accepted and
located, and the escalation follower prints an escalation record."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from geo.generate import GenerateOptions, boundary_from_file, generate_atlas
from geo.layers import write_atlas
from pipeline.envelope import make_event
from pipeline.settings import Settings
from tests.integration.conftest import REPO, Pipeline, read_all
from topics.admin import create

README = (REPO / "README.md").read_text(encoding="utf-8")


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README, flags=re.M | re.S)


@pytest.fixture(scope="module")
def song_atlas(shared_data, tmp_path_factory) -> str:
    geom, adcode, name = boundary_from_file(str(shared_data / "410325.geojson"))
    path = tmp_path_factory.mktemp("song") / "song.geojson"
    write_atlas(generate_atlas(geom, adcode or "410325", name or "嵩县",
                               GenerateOptions(seed=1, grids=60, hazards=0)), str(path))
    return str(path)


def test_the_readme_snippets_work_as_written(embedded_broker, song_atlas, tmp_path):
    s = Settings.from_env({}, broker=embedded_broker.bootstrap, embedded=True)  # prefix gridwatch.
    assert s.topic_prefix == "gridwatch."
    create(s)
    p = Pipeline(s, song_atlas, tmp_path, {"GRIDWATCH_APP_ID": f"readme{os.getpid()}"})
    env = dict(p.env(), GRIDWATCH_BROKER=embedded_broker.bootstrap, GRIDWATCH_EMBEDDED="true")
    worker = p.start_worker()
    ping_py, follow_py = blocks("python")
    setup_sh, curl_sh, _stream = blocks("sh")[1:4]
    web = None
    try:
        before = len(read_all(s.broker, [s.topic("located.v1")]))
        ran = subprocess.run([sys.executable, "-c", ping_py], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr

        work = tmp_path / "repo"  # the curl snippet runs from a checkout: .venv/bin and var/
        (work / "var").mkdir(parents=True)
        (work / ".venv").symlink_to(REPO / ".venv")
        # the server goes on in the background: its output to a file, so the shell can end
        script = curl_sh.replace("--port 6067 &", "--port 6067 >web.log 2>&1 & echo $! > web.pid")
        web = subprocess.run(["bash", "-c", script], env={**env, "GRIDWATCH_ATLAS": song_atlas},
                             cwd=work, capture_output=True, text=True, timeout=120)
        assert '"accepted":"R-0001"' in web.stdout.replace(" ", ""), (web.stdout, web.stderr)

        deadline, located = time.monotonic() + 60, []
        while time.monotonic() < deadline and len(located) < 2:
            located = read_all(s.broker, [s.topic("located.v1")])[before:]
            time.sleep(0.5)
        sources = {orjson.loads(m.value)["data"]["source_type"] for m in located}
        assert sources == {"ping", "report"}, [orjson.loads(m.value)["data"] for m in located]

        esc = {"incident_id": "g~x~1", "step": 2, "transition": "dispatched", "level": "grid_worker",
               "to": ["g"], "at": "2026-07-01T00:00:00.000Z"}
        from kafka import KafkaProducer

        prod = KafkaProducer(bootstrap_servers=s.broker)
        prod.send(s.topic("escalations.v1"), key=b"g~x~1",
                  value=orjson.dumps(make_event("gridwatch.escalation.v1", "g~x~1:2", esc["at"], esc)))
        prod.flush()
        prod.close()
        follow = subprocess.Popen([sys.executable, "-c", follow_py], env=env, cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, _ = follow.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # it follows forever: stop it and read what it printed
            follow.send_signal(signal.SIGINT)
            out, _ = follow.communicate(timeout=10)
        assert "g~x~1 dispatched grid_worker ['g']" in out, out
        assert "GRIDWATCH_BROKER" in setup_sh
    finally:
        pid = tmp_path / "repo" / "web.pid"
        if pid.exists():
            try:
                os.kill(int(pid.read_text().strip()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
        p.stop_worker(worker)


def test_the_snippets_name_real_files():
    for path in re.findall(r"`(topics/schemas/[a-z_]+\.json)`", README):
        assert Path(REPO / path).is_file(), path
