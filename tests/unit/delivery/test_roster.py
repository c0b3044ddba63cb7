"""Rosters: shift boundaries, a holiday, and an empty grid falling back to its parent."""

from datetime import datetime, timedelta, timezone

import pytest

from pipeline.delivery.roster import on_duty, roster_from_dict
from pipeline.errors import ConfigError

BEIJING = timezone(timedelta(hours=8))
PATH = ("410325", "410325100", "410325100001", "410325100001001")
GRID, COMMUNITY, TOWN = PATH[-1], PATH[-2], PATH[-3]

ROSTER = {
    "people": {
        "wang": {"name": "王网格员", "webhook": "http://gw.example/hook", "lang": "zh"},
        "li": {"name": "李值班", "email": "li@example.cn"},
        "zhao": {"name": "赵节假日", "email": "zhao@example.cn"},
        "chen": {"name": "陈替班", "email": "chen@example.cn"},
        "town": {"name": "镇值班室", "webhook": "http://town.example/hook", "lang": "en"},
    },
    "duties": [
        {"unit": GRID, "role": "grid_worker", "substitutes": ["chen"], "shifts": [
            {"who": "wang", "days": "workdays", "from": "08:30", "to": "17:30"},
            {"who": "li", "days": "workdays", "from": "17:30", "to": "08:30"},
            {"who": "zhao", "days": "restdays", "from": "08:00", "to": "20:00"}]},
        {"unit": TOWN, "role": "grid_worker", "shifts": [{"who": "town"}]},
        {"unit": TOWN, "role": "town", "shifts": [{"who": "town", "days": "all"}]},
    ],
}


def at(y, mo, d, h, mi=0):
    return int(datetime(y, mo, d, h, mi, tzinfo=BEIJING).timestamp() * 1000)


def who(moment, role="grid_worker", unit=GRID):
    found = on_duty(roster_from_dict(ROSTER), PATH, unit, role, moment)
    return found and (found.people, found.unit, found.fell_back)


def test_shift_boundaries_on_a_working_day():
    assert who(at(2026, 9, 30, 8, 29)) == (("li", "chen"), GRID, False)  # night shift from the 29th
    assert who(at(2026, 9, 30, 8, 30)) == (("wang", "chen"), GRID, False)
    assert who(at(2026, 9, 30, 17, 29)) == (("wang", "chen"), GRID, False)
    assert who(at(2026, 9, 30, 17, 30)) == (("li", "chen"), GRID, False)
    assert who(at(2026, 9, 30, 23, 59)) == (("li", "chen"), GRID, False)


def test_national_day_is_a_rest_day_and_the_make_up_saturday_a_working_day():
    assert who(at(2026, 10, 1, 10)) == (("zhao", "chen"), GRID, False)  # Thursday, a holiday
    assert who(at(2026, 10, 10, 10)) == (("wang", "chen"), GRID, False)  # Saturday, worked
    # the night after the last working day before the holiday still belongs to it
    assert who(at(2026, 10, 1, 7)) == (("li", "chen"), GRID, False)


def test_nobody_on_duty_falls_back_to_the_territorial_parent():
    # a holiday evening after 20:00: no one at the grid, the town's duty room answers
    assert who(at(2026, 10, 1, 21)) == (("town",), TOWN, True)
    assert who(at(2026, 10, 1, 21), role="district") is None  # nobody anywhere: the caller escalates


def test_roster_errors_are_named():
    bad = {**ROSTER, "duties": [{"unit": GRID, "role": "grid_worker",
                                 "shifts": [{"who": "ghost", "from": "25:00"}]}]}
    with pytest.raises(ConfigError) as err:
        roster_from_dict(bad, "roster.yaml")
    assert "25:00" in str(err.value)
    bad["duties"][0]["shifts"][0]["from"] = "08:00"
    with pytest.raises(ConfigError, match="unknown person 'ghost'"):
        roster_from_dict(bad, "roster.yaml")
    with pytest.raises(ConfigError, match="at least one channel"):
        roster_from_dict({"people": {"x": {"name": "x"}}}, "roster.yaml")
    with pytest.raises(ConfigError, match="unknown days"):
        roster_from_dict({"people": ROSTER["people"], "duties": [
            {"unit": GRID, "role": "grid_worker", "shifts": [{"who": "li", "days": "someday"}]}]})
