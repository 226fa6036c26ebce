"""Turning a user's schedule string into a :class:`.Schedule`."""

from __future__ import annotations

import functools
import re

from .base import Schedule
from .cron import CronSchedule
from .errors import ScheduleError
from .every import EverySchedule, parse_duration
from .fields import parse_cron
from .zones import validate_time_zone

# Every schedule is parsed twice (validating the model, then building the scheduler's trigger)
# and many tasks share an expression; the parsed spec is a frozen value, so it is memoised.
# Room for one expression per task of a 100 000-task instance, whose expressions may all
# differ: a smaller cache parsed each again at the second use (1.3 s of such a start). The
# specs of live tasks are held by their triggers anyway; what the cache can keep beyond them,
# specs no task uses any more, is at most about 120 MB (about 900 bytes a spec, measured with
# tracemalloc), and only after that many distinct expressions have come and gone.
_parse_cron = functools.lru_cache(maxsize=131072)(parse_cron)

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


# ``CRON_TZ=Europe/Paris 0 3 * * *`` (cronie, robfig/cron) and ``TZ=...``: a Kubernetes CronJob
# refuses them too since 1.27, for spec.timeZone. Read as cron fields they gave an error about
# the second field, which did not say what to do.
_ZONE_PREFIX = re.compile(r"(CRON_TZ|TZ)=(\S*)", re.IGNORECASE)


def _refuse_zone_prefix(head: re.Match[str]) -> None:
    prefix = _ZONE_PREFIX.fullmatch(head.group())
    if prefix is None:
        return
    name, zone = prefix.groups()
    try:
        validate_time_zone(zone)
        where = f"spec.timeZone: {zone}"
    except ScheduleError:
        where = "spec.timeZone to the zone's IANA name (e.g. Europe/Paris)"
    raise ScheduleError(f"a {name}= prefix is not supported; set {where} instead", head.start())


def parse_schedule(expression: str, time_zone: str = "UTC") -> Schedule:
    """Parse a cron expression, a macro (``@daily``) or ``@every <duration>``.

    Raises :class:`ScheduleError` for a bad expression (checked first) or time zone.
    """
    words = list(re.finditer(r"\S+", expression))
    if not words:
        raise ScheduleError(
            "empty schedule; expected a cron expression such as '0 2 * * *', a macro such "
            "as '@daily', or '@every 5m'"
        )
    head = words[0]
    _refuse_zone_prefix(head)
    if not head.group().startswith("@"):
        spec = _parse_cron(expression)
        return CronSchedule(expression, validate_time_zone(time_zone), spec)
    name = head.group().lower()
    arguments = words[1:]
    if name == "@every":
        if len(arguments) > 1:
            raise ScheduleError(
                "@every takes one duration without spaces, e.g. '@every 1h30m'",
                arguments[1].start(),
            )
        text = arguments[0].group() if arguments else ""
        column = arguments[0].start() if arguments else head.start()
        interval = parse_duration(text, column)
        return EverySchedule(expression, validate_time_zone(time_zone), interval)
    if name == "@reboot":
        raise ScheduleError(
            "'@reboot' is not supported; crontask runs tasks on a schedule, not at start-up",
            head.start(),
        )
    if name not in MACROS:
        known = ", ".join([*MACROS, "@every <duration>"])
        raise ScheduleError(f"unknown macro {head.group()!r}; use one of {known}", head.start())
    if arguments:
        raise ScheduleError(f"{head.group()!r} takes no arguments", arguments[0].start())
    spec = _parse_cron(MACROS[name])
    return CronSchedule(expression, validate_time_zone(time_zone), spec)
