"""The Lease ``crontask-single`` (``membership.single``) on the project's Kubernetes API emulator,
with the official client: each instance's time is a clock of its own (the monotonic time it
judges by), so that a lease duration passes without waiting for it."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from typing import Any

import pytest
from kubernetes import client

from reconciler.membership.single import (
    CONTENDER,
    DURATION,
    FORBIDDEN_RETRY,
    NAME,
    PERIOD,
    SingleCheck,
    SingleLease,
)
from tests.k8s.emulator import Emulator

A = "host-a:101:1:1:1:aaaa"
B = "host-b:202:1:1:1:bbbb"
ON = "the check for another crontask without --ha is on"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def create(api: Any, body: Any) -> None:
    client.CoordinationV1Api(api).create_namespaced_lease("default", body)


def lease(api: Any) -> Any:
    return client.CoordinationV1Api(api).read_namespaced_lease(NAME, "default")


def instance(api: Any, me: str) -> tuple[SingleLease, Clock]:
    clock = Clock()
    return SingleLease(api, "default", me, monotonic=clock), clock


def test_one_instance_holds_the_lease_and_sees_no_other(k8s_api_client: Any) -> None:
    a, clock = instance(k8s_api_client, A)
    renewals = set()
    for _ in range(5):
        assert a.check() is None
        renewals.add(lease(k8s_api_client).spec.renew_time)
        clock.now += 2
    assert lease(k8s_api_client).spec.holder_identity == A
    assert len(renewals) > 1  # renewed, not only created


def test_two_instances_each_see_the_other(k8s_api_client: Any) -> None:
    a, _ = instance(k8s_api_client, A)
    b, _ = instance(k8s_api_client, B)
    assert a.check() is None  # created: A holds it
    # B's first sight is no evidence (a holder killed a minute ago looks the same) ...
    assert b.check() is None
    assert a.check() is None
    # ... its record changing is: A runs. B says so, and leaves its name in the Lease.
    assert b.check() == A
    assert lease(k8s_api_client).metadata.annotations[CONTENDER] == B
    assert a.check() is None  # the holder's first sight of B, as B's of A
    assert b.check() == A
    assert a.check() == B
    assert lease(k8s_api_client).spec.holder_identity == A


def test_a_released_lease_is_taken_at_once_and_the_other_is_gone(k8s_api_client: Any) -> None:
    a, _ = instance(k8s_api_client, A)
    b, _ = instance(k8s_api_client, B)
    a.check()
    b.check()
    a.check()
    assert b.check() == A
    a.release()  # a graceful stop
    released = lease(k8s_api_client).spec
    assert not released.holder_identity
    assert b.check() is None
    assert lease(k8s_api_client).spec.holder_identity == B
    assert CONTENDER not in (lease(k8s_api_client).metadata.annotations or {})


def test_a_contender_that_stops_is_no_longer_seen(k8s_api_client: Any) -> None:
    a, _ = instance(k8s_api_client, A)
    b, _ = instance(k8s_api_client, B)
    a.check()
    b.check()
    a.check()
    b.check()
    a.check()
    b.check()
    assert a.check() == B
    b.release()
    assert CONTENDER not in (lease(k8s_api_client).metadata.annotations or {})
    assert a.check() is None


def test_a_holder_that_stops_renewing_is_taken_over_after_a_lease_duration(
    k8s_api_client: Any,
) -> None:
    a, _ = instance(k8s_api_client, A)
    b, clock = instance(k8s_api_client, B)
    a.check()
    b.check()
    a.check()
    assert b.check() == A
    # A is killed: its record stops changing. Until a lease duration of B's own time has
    # passed since B saw it change, A counts as running; then B takes the Lease.
    clock.now += DURATION - 1
    assert b.check() == A
    clock.now += 1
    assert b.check() is None
    assert b.check() is None
    assert lease(k8s_api_client).spec.holder_identity == B


def test_a_dead_holder_found_at_start_is_never_reported(k8s_api_client: Any) -> None:
    create(
        k8s_api_client,
        {
            "metadata": {"name": NAME},
            "spec": {
                "holderIdentity": A,
                "leaseDurationSeconds": 15,
                # Far in the future by this machine's clock: never compared with it.
                "renewTime": "2999-01-01T00:00:00.000000Z",
            },
        },
    )
    b, clock = instance(k8s_api_client, B)
    for _ in range(DURATION // 2 + 2):  # past a lease duration
        assert b.check() is None
        clock.now += 2
    assert lease(k8s_api_client).spec.holder_identity == B


def test_a_lease_anyone_wrote_badly_is_no_crash(k8s_api_client: Any) -> None:
    create(
        k8s_api_client,
        {
            "metadata": {"name": NAME, "annotations": {CONTENDER: "x" * 10_000}},
            "spec": {"holderIdentity": "", "leaseDurationSeconds": 1},
        },
    )
    a, _ = instance(k8s_api_client, A)
    assert a.check() is None
    assert lease(k8s_api_client).spec.holder_identity == A
    assert CONTENDER not in (lease(k8s_api_client).metadata.annotations or {})


def lease_calls(emulator: Emulator) -> int:
    return sum("/leases" in path for _, path in emulator.requests)


def forbidden_check(api: Any, clock: Clock, said: list[bool]) -> SingleCheck:
    return SingleCheck(
        SingleLease(api, "default", A, monotonic=clock), said.append, monotonic=clock
    )


async def tried_at(
    check: SingleCheck, emulator: Emulator, clock: Clock, until: float
) -> list[float]:
    """The times (of ``clock``) at which the check called the API, one period's step at a time
    up to ``until``: as ``SingleCheck.run`` calls ``once``."""
    tries = []
    while clock.now < until:
        calls = lease_calls(emulator)
        await check.once()
        if lease_calls(emulator) != calls:
            tries.append(clock.now)
        clock.now += PERIOD
    return tries


def said_of_forbidden(caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[str]]:
    """The lines that said the check is off (warnings), and those that said it is on again."""
    off = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    on = [r.getMessage() for r in caplog.records if r.getMessage() == ON]
    return off, on


def test_forbidden_for_good_is_one_warning_and_tries_backing_off_to_the_slow_retry(
    emulator: Emulator, k8s_api_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """No RBAC for the Lease from the start: tried after a period, then twice as long each time,
    up to FORBIDDEN_RETRY; said once; and once allowed, the check is on and says so."""
    said: list[bool] = []
    clock = Clock()
    check = forbidden_check(k8s_api_client, clock, said)
    waits = [2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    emulator.inject_errors(status=403, times=len(waits) + 1)
    with caplog.at_level(logging.INFO, "crontask.membership"):
        tries = asyncio.run(tried_at(check, emulator, clock, clock.now + sum(waits) + 1))
        assert [b - a for a, b in itertools.pairwise(tries)] == waits
        asyncio.run(tried_at(check, emulator, clock, clock.now + FORBIDDEN_RETRY))  # allowed now
    off, on = said_of_forbidden(caplog)
    assert len(off) == 1, caplog.text
    assert 'resourceNames: ["crontask-single"], verbs: ["get", "update"]' in off[0]
    assert len(on) == 1, caplog.text
    assert said == []  # the gauge is left at its 0
    assert lease(k8s_api_client).spec.holder_identity == A


def test_a_brief_forbidden_lets_the_holders_lease_neither_lapse_nor_be_taken_over(
    emulator: Emulator, k8s_api_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A Role re-created by a GitOps tool: a few periods of 403 on the Lease. The holder tries
    at each period, as it renews, so its Lease is renewed again within a lease duration: the
    crontask B started meanwhile finds it held and running, not lapsed (the holder once sent
    nothing for 300 s: B took the Lease over after 15 s, and both ran every slot without a
    word)."""
    said: list[bool] = []
    clock = Clock()
    check = forbidden_check(k8s_api_client, clock, said)
    b = SingleLease(k8s_api_client, "default", B, monotonic=clock)
    with caplog.at_level(logging.INFO, "crontask.membership"):
        asyncio.run(check.once())
        assert lease(k8s_api_client).spec.holder_identity == A
        b.check()  # B starts: its first sight of A's hold
        denied = 6  # 403s for the next six periods: 12 s of a 15 s lease duration
        emulator.inject_errors(status=403, times=denied)
        clock.now += PERIOD
        start = clock.now
        tries = asyncio.run(tried_at(check, emulator, clock, start + PERIOD * (denied + 1)))
    assert b.check() == A  # A's hold changed since B first saw it: A runs, B says so
    assert tries == [start + PERIOD * n for n in range(denied + 1)]  # each period, renewed
    assert lease(k8s_api_client).spec.holder_identity == A
    off, on = said_of_forbidden(caplog)
    assert len(off) == 1, caplog.text  # off once, on again once: not a line per try
    assert len(on) == 1, caplog.text


def test_a_holder_forbidden_past_a_lease_duration_backs_off(
    emulator: Emulator, k8s_api_client: Any
) -> None:
    """Once its record in the Lease is past a lease duration (lapsed for everyone), the holder
    tries no more often than one never allowed."""
    clock = Clock()
    check = forbidden_check(k8s_api_client, clock, [])
    asyncio.run(check.once())
    clock.now += PERIOD
    emulator.inject_errors(status=403, times=14)  # each try up to 200 s, as counted below
    tries = asyncio.run(tried_at(check, emulator, clock, clock.now + 200))
    assert len(tries) == 14
    # Renewed at 1000: tried at each period up to 1016, past its lease duration; then backing
    # off as one never allowed.
    assert tries[:8] == [1000.0 + PERIOD * n for n in range(1, 9)]
    assert [b - a for a, b in itertools.pairwise(tries[7:])] == [2, 4, 8, 16, 32, 64]


class _Hung:
    """A Lease whose API server accepts the calls and never answers (until ``answer``)."""

    namespace = "default"

    def __init__(self) -> None:
        self.answer = threading.Event()
        self.called = threading.Event()

    def check(self) -> str | None:
        self.called.set()
        self.answer.wait(60)
        return None

    def release(self) -> None:
        self.answer.wait(60)


def test_a_stop_does_not_wait_for_an_api_server_that_does_not_answer() -> None:
    """A check in flight as the stop begins is left to its thread, and the release is waited
    for a moment only: the stop took the calls' timeouts and retries (78 s, past the pod's
    termination grace)."""
    hung = _Hung()
    check = SingleCheck(hung, release_wait=0.1)  # type: ignore[arg-type]

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.ensure_future(check.run(lambda: None, stop))
        assert await asyncio.to_thread(hung.called.wait, 10)  # the check is in flight
        check.closing()
        stop.set()
        await asyncio.wait_for(running, 10)  # a bound on failure, not a timing

    try:
        asyncio.run(main())
        assert not hung.answer.is_set()  # it returned while both calls still hung
    finally:
        hung.answer.set()


class _Slow:
    """A Lease whose check answers only when told: the calls are recorded in order."""

    namespace = "default"

    def __init__(self) -> None:
        self.go = threading.Event()
        self.called = threading.Event()
        self.calls: list[str] = []

    def check(self) -> str | None:
        self.called.set()
        self.go.wait(60)
        self.calls.append("check")
        return None

    def release(self) -> None:
        self.calls.append("release")


def test_the_release_waits_for_a_check_in_flight_then_goes() -> None:
    """Side by side, the check's renewal and the release read one resourceVersion: the
    release's write found a 409 and the stopped crontask's Lease stayed held, just renewed."""
    slow = _Slow()
    check = SingleCheck(slow, release_wait=30)  # type: ignore[arg-type]

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.ensure_future(check.run(lambda: None, stop))
        assert await asyncio.to_thread(slow.called.wait, 10)
        check.closing()
        stop.set()
        slow.go.set()
        await asyncio.wait_for(running, 10)

    try:
        asyncio.run(main())
    finally:
        slow.go.set()
    assert slow.calls == ["check", "release"]
