"""Timestamps as S3 writes them: ISO-8601 with milliseconds in XML, HTTP-dates in headers.

XML bodies carry ``2009-10-12T17:50:30.000Z`` (UTC, always three fractional digits).
Headers (``Last-Modified``, ``Expires``, ``If-Modified-Since``, ...) carry RFC 9110
HTTP-dates; the three historical forms are accepted on input, only IMF-fixdate is written.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NUMBER = {name: index + 1 for index, name in enumerate(_MONTHS)}

# IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
_IMF_FIXDATE = re.compile(
    r"^[A-Z][a-z]{2}, (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$", re.ASCII
)
# obsolete RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
_RFC850 = re.compile(
    r"^[A-Z][a-z]{5,8}, (\d{2})-([A-Z][a-z]{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT$", re.ASCII
)
# obsolete asctime: Sun Nov  6 08:49:37 1994
_ASCTIME = re.compile(
    r"^[A-Z][a-z]{2} ([A-Z][a-z]{2}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})$", re.ASCII
)
MAX_HTTP_DATE_CHARS = 64
"""Longer header values are not dates; they are ignored without running a regex on them."""


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(timezone.utc)


def format_timestamp(moment: datetime) -> str:
    """``moment`` as S3's XML timestamp, e.g. ``2009-10-12T17:50:30.000Z`` (milliseconds truncated)."""
    utc = _utc(moment)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def format_http_date(moment: datetime) -> str:
    """``moment`` as an IMF-fixdate header value, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    utc = _utc(moment)
    return (
        f"{_DAYS[utc.weekday()]}, {utc.day:02d} {_MONTHS[utc.month - 1]} {utc.year:04d} "
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d} GMT"
    )


def _build(year: int, month_name: str, day: int, hms: tuple[str, str, str]) -> datetime | None:
    month = _MONTH_NUMBER.get(month_name)
    if month is None:
        return None
    try:
        return datetime(year, month, day, int(hms[0]), int(hms[1]), int(hms[2]), tzinfo=timezone.utc)
    except ValueError:
        return None


def parse_http_date(value: str) -> datetime | None:
    """The UTC instant of an HTTP-date, or ``None`` if ``value`` is not one.

    ``None`` rather than an error because HTTP says an invalid date in a conditional
    header is ignored, and S3 does so.
    """
    text = value.strip()
    if len(text) > MAX_HTTP_DATE_CHARS:
        return None
    if match := _IMF_FIXDATE.match(text):
        day, month, year, *hms = match.groups()
        return _build(int(year), month, int(day), (hms[0], hms[1], hms[2]))
    if match := _RFC850.match(text):
        day, month, yy, *hms = match.groups()
        # RFC 9110: a two-digit year more than 50 years in the future is in the past century;
        # with no clock here, 70-99 are 19xx and 00-69 are 20xx, as the C library does.
        year = int(yy) + (1900 if int(yy) >= 70 else 2000)
        return _build(year, month, int(day), (hms[0], hms[1], hms[2]))
    if match := _ASCTIME.match(text):
        month, day, hour, minute, second, year = match.groups()
        return _build(int(year), month, int(day), (hour, minute, second))
    return None
