"""How far a replica's clock is from the database's (``membership.clock``): the estimate from a
renewal's round trip, and when it is worth a log line. Numbers only: no clock, no I/O."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.membership.clock import (
    SAY_AGAIN_EVERY,
    ClockWatch,
    Offset,
    Said,
    advice,
    estimate,
)

T0 = datetime(2026, 12, 7, 4, 18, 0, tzinfo=UTC)


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def test_the_estimate_is_the_midpoint_less_the_service_time() -> None:
    # Ours read 04:18:00 and 04:18:00.2; the database said 04:17:56.1 in between: 4 s ahead.
    found = estimate(T0, T0 + s(0.2), T0 - s(3.9))
    assert found is not None
    assert found.seconds == pytest.approx(4.0)
    assert found.uncertainty == pytest.approx(0.1)


def test_a_clock_behind_is_negative() -> None:
    found = estimate(T0, T0 + s(0.02), T0 + s(3.01))
    assert found is not None
    assert found.seconds == pytest.approx(-3.0)
    assert found.uncertainty == pytest.approx(0.01)


def test_no_estimate_when_our_clock_went_back_during_the_call() -> None:
    assert estimate(T0, T0 - s(1), T0) is None


def test_a_clock_surely_off_is_warned_of_once() -> None:
    said, say = advice(None, Offset(4.0, 0.1), at=100)
    assert (said, say) == (Said(4.0, 100), "warn")
    said, say = advice(said, Offset(4.05, 0.1), at=102)
    assert (said, say) == (Said(4.0, 100), None)  # the same: not said again


def test_within_the_limit_nothing_is_said() -> None:
    assert advice(None, Offset(0.9, 0.05), at=0) == (None, None)
    assert advice(None, Offset(-0.99, 0.0), at=0) == (None, None)


def test_an_offset_its_uncertainty_could_explain_is_not_warned_of() -> None:
    # A renewal that took 3 s: 1.4 s off by the midpoint, but 1.5 s either way is possible.
    assert advice(None, Offset(1.4, 1.5), at=0) == (None, None)
    # The same slow renewal, 3 s off: beyond the limit whatever the truth in the round trip.
    assert advice(None, Offset(-3.0, 1.5), at=0)[1] == "warn"


def test_said_again_when_it_changes_materially() -> None:
    said = Said(4.0, 100)
    assert advice(said, Offset(5.5, 0.1), at=110) == (Said(5.5, 110), "warn")
    # A change its uncertainty could explain is no change.
    assert advice(said, Offset(5.5, 0.6), at=110) == (said, None)


def test_said_again_every_ten_minutes_while_it_lasts() -> None:
    said = Said(4.0, 100)
    assert advice(said, Offset(4.0, 0.1), at=100 + SAY_AGAIN_EVERY - 1) == (said, None)
    at = 100 + SAY_AGAIN_EVERY
    assert advice(said, Offset(4.0, 0.1), at=at) == (Said(4.0, at), "warn")


def test_back_within_bounds_is_said_once_it_surely_is() -> None:
    said = Said(4.0, 100)
    # 0.8 s by the midpoint, but maybe 1.3: the warning stands, nothing said.
    assert advice(said, Offset(0.8, 0.5), at=110) == (said, None)
    # Surely within the limit, but not within BACK_WITHIN: not yet.
    assert advice(said, Offset(0.7, 0.1), at=111) == (said, None)
    back = Said(4.0, 100, stands=False)  # the last warning is kept
    assert advice(said, Offset(0.2, 0.1), at=112) == (back, "back")
    assert advice(back, Offset(0.1, 0.1), at=114) == (back, None)  # said once


def test_after_the_word_back_the_last_warning_still_counts() -> None:
    back = Said(4.0, 100, stands=False)
    # The same offset again minutes later (a clock stepped to and fro): nothing new.
    assert advice(back, Offset(4.2, 0.1), at=200) == (back, None)
    # Changed materially since the warning: said at once.
    assert advice(back, Offset(-4.0, 0.1), at=200) == (Said(-4.0, 200), "warn")
    # The same offset, SAY_AGAIN_EVERY after the warning: said again.
    at = 100 + SAY_AGAIN_EVERY
    assert advice(back, Offset(4.0, 0.1), at=at) == (Said(4.0, at), "warn")


def lines_logged(offsets: list[float], caplog: pytest.LogCaptureFixture) -> list[str]:
    """The lines a watch logs for a renewal every few seconds finding each offset in turn (a
    4 ms round trip), all within SAY_AGAIN_EVERY of the first."""
    every = SAY_AGAIN_EVERY / len(offsets)
    mono = [0.0]
    watch = ClockWatch(lambda: mono[0])
    caplog.set_level(logging.INFO, logger="crontask.membership")
    caplog.clear()
    for i, offset in enumerate(offsets):
        mono[0] = i * every
        before = T0 + s(i * every)
        watch.note(before, before + s(0.004), before + s(0.002 - offset))
    return [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize(
    "offsets",
    [
        [1.01 if i % 2 else 0.99 for i in range(120)],
        [1.0 + 0.005 * ((i * 4) % 9 - 4) for i in range(120)],  # 1.00 +- 0.02, in turn
    ],
    ids=["alternating 0.99 and 1.01 s", "1.00 +- 0.02 s"],
)
def test_a_clock_hovering_about_the_limit_is_said_once(
    offsets: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    # The estimate's jitter crosses the limit both ways by more than its uncertainty: each
    # renewal used to say it was off, the next that it agreed again (120 lines in 10 minutes).
    logged = lines_logged(offsets, caplog)
    assert len(logged) == 1
    assert "keep the replicas' clocks in sync (NTP)" in logged[0]


def test_the_watch_logs_the_warning_and_the_way_back(caplog: pytest.LogCaptureFixture) -> None:
    mono = [0.0]
    watch = ClockWatch(lambda: mono[0])
    caplog.set_level(logging.INFO, logger="crontask.membership")
    assert watch.seconds is None  # before a renewal
    watch.note(T0, T0 + s(0.2), T0 - s(3.9))
    watch.note(T0 + s(2), T0 + s(2.2), T0 - s(1.9))
    assert watch.seconds == pytest.approx(4.0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "keep the replicas' clocks in sync (NTP)" in warnings[0].getMessage()
    fields = getattr(warnings[0], "fields", None)
    assert fields == {"offset_seconds": 4.0, "uncertainty_seconds": 0.1}
    watch.note(T0 + s(4), T0 + s(4.2), T0 + s(4.1))
    assert watch.seconds == pytest.approx(0.0)
    assert [r.getMessage() for r in caplog.records][-1].startswith(
        "this replica's clock agrees with the database's again"
    )
