"""SLA arithmetic across China's holidays and make-up workdays."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from pipeline.incident.sla import deadline, is_workday

BEIJING = timezone(timedelta(hours=8))


def ms(y, mo, d, h=0, mi=0):  # Beijing local time -> epoch ms
    return int(datetime(y, mo, d, h, mi, tzinfo=BEIJING).timestamp() * 1000)


def test_helper_is_beijing_time():
    assert ms(2026, 9, 30, 17, 0) == int(datetime(2026, 9, 30, 9, 0, tzinfo=UTC).timestamp() * 1000)
    assert ms(2026, 10, 1, 2, 0) == int(datetime(2026, 9, 30, 18, 0, tzinfo=UTC).timestamp() * 1000)


def test_calendar_knows_national_day_and_the_make_up_saturday():
    assert not is_workday(date(2026, 10, 1))  # National Day
    assert not is_workday(date(2026, 10, 7))
    assert is_workday(date(2026, 10, 10))  # a Saturday worked to pay for the holiday
    assert not is_workday(date(2026, 10, 11))  # an ordinary Sunday


def test_clock_time_ignores_the_calendar():
    assert deadline(ms(2026, 10, 1, 9), 15, "minutes").at_ms == ms(2026, 10, 1, 9, 15)
    assert deadline(ms(2026, 10, 1, 9), 2, "hours").at_ms == ms(2026, 10, 1, 11)


def test_working_hours_skip_lunch_nights_and_the_holiday():
    # Wed 30 Sep 17:00, 4 working hours: 0.5 h that evening, then the holiday (1-7 Oct);
    # Thu 8 Oct is the first working day after it: 08:30 + 3.5 h = 12:00
    assert deadline(ms(2026, 9, 30, 17), 4, "working_hours").at_ms == ms(2026, 10, 8, 12, 0)
    # 5 working hours from Fri 9 Oct 11:00: 1 h to noon, 3.5 h in the afternoon, then the
    # make-up Saturday 10 Oct counts: 08:30 + 0.5 h
    assert deadline(ms(2026, 10, 9, 11), 5, "working_hours").at_ms == ms(2026, 10, 10, 9, 0)


def test_working_days_across_the_holiday():
    # accepted Wed 30 Sep: day 1 is Thu 8 Oct, day 2 Fri 9 Oct, day 3 the make-up Sat 10 Oct
    assert deadline(ms(2026, 9, 30, 10), 3, "working_days").at_ms == ms(2026, 10, 10, 17, 30)
    assert deadline(ms(2026, 9, 30, 10), 4, "working_days").at_ms == ms(2026, 10, 12, 17, 30)
    assert deadline(ms(2026, 9, 30, 10), 1, "working_days").at_ms == ms(2026, 10, 8, 17, 30)


def test_years_beyond_the_package_fall_back_to_weekdays_and_say_so():
    d = deadline(ms(2031, 3, 6, 10), 1, "working_days")  # Thu -> Fri
    assert d.calendar_fallback and d.at_ms == ms(2031, 3, 7, 17, 30)
    assert not deadline(ms(2026, 3, 5, 10), 1, "working_days").calendar_fallback


@pytest.mark.parametrize("amount,unit", [(-1, "minutes"), (1, "fortnights")])
def test_bad_amounts_and_units(amount, unit):
    with pytest.raises(ValueError):
        deadline(0, amount, unit)
