"""Whole days in the site's time zone, as the API and the commands take them (`date_from`, `--since`), and
Stripe's Unix times as datetimes."""

from datetime import UTC, date, datetime, time, timedelta

from django.utils import timezone


def day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def day_end(day: date) -> datetime | None:
    """The moment the day ends (the next one starts); None for the last day there is, which has no next."""
    return day_start(day + timedelta(days=1)) if day < date.max else None


def days_between(field: str, first: date, last: date) -> dict:
    """Lookups for `field` within [first, last], both whole days, compared as times so an index on it serves."""
    bounds = {f"{field}__gte": day_start(first)}
    end = day_end(last)
    if end is not None:
        bounds[f"{field}__lt"] = end
    return bounds


def seconds_since(when: datetime | None) -> float:
    """How long ago `when` was, in seconds (0.0 for none, or a moment not yet come)."""
    return max(0.0, (timezone.now() - when).total_seconds()) if when else 0.0


def moment(timestamp: int | None) -> datetime | None:
    """A Unix time (as Stripe gives them) as an aware datetime; None for none."""
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else None
