"""The 24-hour timeline of one task's page: its runs as bars, hours on the axis, both in the
task's zone (as every time the page shows for a task: ``views.cell_title``)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Final, Literal

from reconciler.controller.store_calls import PAGE_READ_WAIT
from reconciler.controller.view import RuntimeView
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.store.base import RunQuery
from reconciler.web.views import cell_title, human_duration, read_store, zone_of

TIMELINE_MAX: Final = 1000
TIMELINE_WIDTH: Final = 960
# An hour label (about 30 units wide) centred closer than this to an end is cut in half by
# the edge: it is anchored at its tick's side instead.
EDGE: Final = 16

Anchor = Literal["start", "middle", "end"]


@dataclasses.dataclass(frozen=True, slots=True)
class Bar:
    """One run on the 24-hour timeline, in the SVG's units."""

    x: float
    width: float
    status: str
    title: str
    id: str


@dataclasses.dataclass(frozen=True, slots=True)
class Tick:
    x: float
    label: str
    anchor: Anchor = "middle"


@dataclasses.dataclass(frozen=True, slots=True)
class Timeline:
    width: int
    bars: list[Bar]
    ticks: list[Tick]
    truncated: bool  # more runs than drawn
    start: datetime
    end: datetime

    @property
    def runs(self) -> int:
        """The runs drawn: a run that retried is a bar for each attempt."""
        return len({bar.id for bar in self.bars})


def timeline(runtime: RuntimeView, key: str, zone: str, now: datetime, hours: int = 24) -> Timeline:
    start = now - timedelta(hours=hours)
    query = RunQuery(task=key, since=start, limit=TIMELINE_MAX, output=False)
    page = read_store(runtime, lambda store: store.query(query), PAGE_READ_WAIT)
    span = (now - start).total_seconds()

    def x_of(at: datetime) -> float:
        return round(max(0.0, min(1.0, (at - start).total_seconds() / span)) * TIMELINE_WIDTH, 1)

    bars = []
    for record in page.items:
        began = record.started_at or record.scheduled_at
        ended = record.finished_at or (now if record.status is RunStatus.RUNNING else began)
        x = x_of(began)
        width = max(x_of(ended) - x, 2.0)
        bars.append(Bar(x, width, record.status.value, _bar_title(record, zone), record.id))
    bars.reverse()  # oldest first, so newer bars are drawn over older ones
    tz = zone_of(zone)
    ticks = []
    first = start.astimezone(tz).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    for i in range(0, hours, 3):
        at = first + timedelta(hours=i)
        x = x_of(at)
        ticks.append(Tick(x, at.strftime("%H:%M"), _anchor(x)))
    return Timeline(TIMELINE_WIDTH, bars, ticks, page.next_cursor is not None, start, now)


def _anchor(x: float) -> Anchor:
    if x < EDGE:
        return "start"
    if x > TIMELINE_WIDTH - EDGE:
        return "end"
    return "middle"


def _bar_title(record: RunRecord, zone: str) -> str:
    duration = human_duration(record.duration_ms)
    lasted = f" in {duration}" if duration else ""
    return f"{cell_title(record, zone)}{lasted}"


__all__ = ["TIMELINE_MAX", "TIMELINE_WIDTH", "Bar", "Tick", "Timeline", "timeline"]
