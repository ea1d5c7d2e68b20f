"""Helpers of dynamodb_cache 0.1.1."""
from datetime import datetime, timezone


def utc_now() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(timezone.utc)
