"""The manager of components: start in order, each after the previous is ready; stop in the
reverse order, each after the later ones ended; a failure stops everything and is reported."""

from __future__ import annotations

import asyncio

import pytest

from reconciler.controller.manager import (
    ComponentFailed,
    Failure,
    Manager,
    Ready,
    StopBeforeReady,
)


class Part:
    def __init__(self, name: str, log: list[str], *, fail: str | None = None) -> None:
        self.name = name
        self.log = log
        self.fail = fail
        self.crash = asyncio.Event()

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        self.log.append(f"start {self.name}")
        if self.fail == "before-ready":
            raise RuntimeError(f"{self.name} cannot start")
        ready()
        waiting = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.crash.wait())}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        for w in waiting:
            w.cancel()
        if self.crash.is_set():
            raise RuntimeError(f"{self.name} crashed")
        await asyncio.sleep(0)  # cleaning up takes a turn: the next stop must wait for it
        self.log.append(f"stop {self.name}")


def test_start_in_order_and_stop_in_reverse() -> None:
    log: list[str] = []

    async def main() -> None:
        manager = Manager()
        for name in ("writer", "watch", "runs", "http"):
            await manager.start(Part(name, log))
        await manager.shutdown()
        assert manager.failures == []

    asyncio.run(main())
    assert log == [
        "start writer",
        "start watch",
        "start runs",
        "start http",
        "stop http",
        "stop runs",
        "stop watch",
        "stop writer",
    ]


def test_a_component_that_fails_while_running_stops_the_process() -> None:
    log: list[str] = []

    async def main() -> None:
        manager = Manager()
        watch = Part("watch", log)
        await manager.start(Part("writer", log))
        await manager.start(watch)
        watch.crash.set()
        await asyncio.wait_for(manager.wait(), 5)
        await manager.shutdown()
        assert manager.failures == [Failure("watch", "watch crashed")]

    asyncio.run(main())
    assert log[-1] == "stop writer"


def test_a_component_that_cannot_start_is_reported_and_the_rest_stopped() -> None:
    log: list[str] = []

    async def main() -> None:
        manager = Manager()
        await manager.start(Part("writer", log))
        with pytest.raises(ComponentFailed, match="informer: informer cannot start"):
            await manager.start(Part("informer", log, fail="before-ready"))
        await manager.shutdown()
        assert manager.failures == [Failure("informer", "informer cannot start")]

    asyncio.run(main())
    assert log == ["start writer", "start informer", "stop writer"]


class Slow:
    """A component whose start never ends by itself (a first clone from a remote that hangs),
    and that stops when asked."""

    name = "git-source"

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        self.log.append("start git-source")
        await stop.wait()
        self.log.append("stop git-source")


def test_a_stop_while_a_component_starts_ends_the_start_up() -> None:
    log: list[str] = []

    async def main() -> None:
        manager = Manager()
        await manager.start(Part("writer", log))
        starting = asyncio.ensure_future(manager.start(Slow(log)))
        await asyncio.sleep(0)
        manager.stopping.set()  # SIGTERM
        with pytest.raises(StopBeforeReady, match="git-source"):
            await asyncio.wait_for(starting, 5)
        await manager.shutdown()
        assert manager.failures == []

    asyncio.run(main())
    assert log == ["start writer", "start git-source", "stop git-source", "stop writer"]


def test_a_second_stop_signal_hurries() -> None:
    async def main() -> None:
        manager = Manager()
        manager.signalled()
        assert manager.stopping.is_set()
        assert not manager.hurry.is_set()
        manager.signalled()
        assert manager.hurry.is_set()

    asyncio.run(main())
