"""Calendar arithmetic for certificate validity (a year is a calendar year, not 365 days)."""

from __future__ import annotations

from datetime import datetime


def add_years(moment: datetime, years: int) -> datetime:
    """Same month, day and time ``years`` later; 29 February becomes 28 February."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February into a common year
        return moment.replace(year=moment.year + years, day=28)
