"""Schedules of CronTasks: cron expressions, macros and ``@every`` intervals, with time zones.

The rule of this package: it is pure. No I/O, no clock (the current time is always passed in),
no threads, no framework imports; the standard library only. The one exception is the tzdata
that :class:`zoneinfo.ZoneInfo` loads when a zone is first named, and the same file read once
more by :mod:`.tzif` to learn whether the zone ever changes its offset.

Entry points: :func:`parse_schedule` (a string and a zone name to a :class:`Schedule`),
:func:`validate_time_zone` and :func:`jitter_offset`. DST follows Vixie cron / cronie; see
:mod:`.cron` for the rule. The day fields also take Quartz's ``L``, ``W``, ``#`` and ``?``;
see :mod:`.days` for what they select.
"""

from __future__ import annotations

from .base import Schedule
from .cron import CronSchedule
from .errors import ScheduleError
from .every import EverySchedule
from .jitter import jitter_offset
from .parse import parse_schedule
from .zones import validate_time_zone

__all__ = [
    "CronSchedule",
    "EverySchedule",
    "Schedule",
    "ScheduleError",
    "jitter_offset",
    "parse_schedule",
    "validate_time_zone",
]
