"""GDPR art. 12(3) deadlines, counted in calendar months as the law counts them.

Regulation 1182/71 art. 3: a period in months ends on the same date of the
following month; where that month has no such date, on its last day. So a request
received on 31 January is due on 28 (or 29) February, not "30 days later".
"""

from __future__ import annotations

import calendar
from datetime import date, datetime
from zoneinfo import ZoneInfo

RESPONSE_MONTHS = 1
MAX_EXTENSION_MONTHS = 2


def add_months(start: date, months: int) -> date:
    """Same day `months` later, clamped to the end of a shorter month."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


def local_date(moment: datetime, timezone: str) -> date:
    """The calendar date in the controller's zone: a request sent at 00:30 in
    Helsinki on 1 March was received on 1 March, whatever UTC says."""
    return moment.astimezone(ZoneInfo(timezone)).date()


def due_date(received_at: datetime, timezone: str) -> date:
    return add_months(local_date(received_at, timezone), RESPONSE_MONTHS)


def extended_due_date(received_at: datetime, timezone: str, months: int) -> date:
    """Counted from receipt, not from the (possibly clamped) first deadline:
    31 January + 3 months is 30 April, where 28 February + 2 would give 28 April."""
    if not 1 <= months <= MAX_EXTENSION_MONTHS:
        raise ValueError(f"an extension is 1 or {MAX_EXTENSION_MONTHS} months, not {months}")
    return add_months(local_date(received_at, timezone), RESPONSE_MONTHS + months)
