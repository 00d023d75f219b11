"""GDPR art. 12(3) deadlines in calendar months, by the controller's local date."""

from datetime import UTC, date, datetime

import pytest

from hub.deadlines import add_months, due_date, extended_due_date, local_date

HKI = "Europe/Helsinki"


def noon(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(("received", "due"), [
    (date(2025, 1, 31), date(2025, 2, 28)),
    (date(2024, 1, 31), date(2024, 2, 29)),  # leap year
    (date(2025, 1, 30), date(2025, 2, 28)),
    (date(2025, 1, 15), date(2025, 2, 15)),
    (date(2025, 3, 31), date(2025, 4, 30)),
    (date(2025, 10, 31), date(2025, 11, 30)),
    (date(2025, 11, 30), date(2025, 12, 30)),
    (date(2025, 12, 31), date(2026, 1, 31)),  # across the year end
    (date(2025, 2, 28), date(2025, 3, 28)),  # not "end of month to end of month"
])
def test_due_one_calendar_month_after_receipt(received, due):
    assert due_date(noon(received), HKI) == due


def test_add_months_clamps_and_crosses_years():
    assert add_months(date(2025, 11, 30), 3) == date(2026, 2, 28)
    assert add_months(date(2023, 12, 31), 2) == date(2024, 2, 29)
    assert add_months(date(2025, 5, 31), 12) == date(2026, 5, 31)


def test_receipt_late_at_night_utc_counts_by_the_helsinki_date():
    # 22:30 UTC on 31 January is 00:30 on 1 February in Helsinki (UTC+2).
    moment = datetime(2025, 1, 31, 22, 30, tzinfo=UTC)
    assert local_date(moment, HKI) == date(2025, 2, 1)
    assert due_date(moment, HKI) == date(2025, 3, 1)
    # An hour earlier it was still 31 January in Helsinki.
    assert due_date(datetime(2025, 1, 31, 21, 30, tzinfo=UTC), HKI) == date(2025, 2, 28)


def test_summer_time_offset_is_used_in_summer():
    # 21:30 UTC on 30 June is 00:30 on 1 July in Helsinki (UTC+3).
    assert due_date(datetime(2025, 6, 30, 21, 30, tzinfo=UTC), HKI) == date(2025, 8, 1)
    assert due_date(datetime(2025, 6, 30, 20, 30, tzinfo=UTC), HKI) == date(2025, 7, 30)


def test_extension_is_counted_from_receipt_not_from_the_clamped_deadline():
    received = noon(date(2025, 1, 31))
    assert extended_due_date(received, HKI, 2) == date(2025, 4, 30)
    assert extended_due_date(received, HKI, 1) == date(2025, 3, 31)


@pytest.mark.parametrize("months", [0, 3, -1])
def test_extension_is_one_or_two_months(months):
    with pytest.raises(ValueError, match="1 or 2 months"):
        extended_due_date(noon(date(2025, 1, 31)), HKI, months)
