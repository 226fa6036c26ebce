"""An http action's ``expectStatus``: its form, and the parts of it that match no status a run
can end with (refused when no part does, a warning beside parts that do: ``actions``)."""

from __future__ import annotations

STATUS_RANGES = r"^\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*$"
# What a response's status can be: three digits from 100, as h11 reads them (RFC 9110 15 names
# 100-599, but servers send more: LinkedIn's 999). A range below it, or from its high end to its
# low one ("299-200"), matches nothing.
STATUS_LEAST, STATUS_MOST = 100, 999
# A 1xx but 101 (Switching Protocols) is an interim answer: the client reads on to the final
# status, the one a run ends with; a part within them ("100", "102-199") matches none.
_INTERIM_LAST = 199
_SWITCH = 101


def dead_statuses(ranges: str) -> list[str]:
    """Why each part of ``ranges`` (an ``expectStatus``) that matches no status does not."""
    dead = []
    for part in ranges.split(","):
        low, _, high = part.partition("-")
        least, most = int(low), int(high or low)
        if least > most:
            dead.append(
                f"{part!r} matches no status: a range goes from its lowest status to its "
                f"highest ('{high}-{low}')"
            )
        elif most < STATUS_LEAST:
            dead.append(f"{part!r} matches no status: a status is {STATUS_LEAST} to {STATUS_MOST}")
        elif most <= _INTERIM_LAST and not least <= _SWITCH <= most:
            dead.append(
                f"{part!r} matches no status a run ends with: a 1xx other than 101 is an "
                "interim answer, followed by the final status"
            )
    return dead
