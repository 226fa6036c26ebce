"""crontask's blocking work runs in threads of its own: a default executor held by something
else (a resolver that never answers, for http actions) does not stall a pass or the runtime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reconciler.aio import close_threads, in_thread, open_threads
from reconciler.controller.options import Options
from reconciler.controller.runtime import serve
from tests.controller.test_reconcile import World, doc

# A bound on work that takes milliseconds: reached only if the work waits for the held threads.
PATIENCE = 10.0


@contextlib.asynccontextmanager
async def default_executor_held(workers: int = 2) -> AsyncIterator[None]:
    """Every thread of the loop's default executor busy until the block ends, as
    ``loop.getaddrinfo`` keeps them when the DNS server never answers."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(workers, thread_name_prefix="held"))
    release, holding = threading.Event(), threading.Semaphore(0)

    def hold() -> None:
        holding.release()
        release.wait()

    held = [loop.run_in_executor(None, hold) for _ in range(workers)]
    try:
        for _ in range(workers):  # every worker is inside hold(): none is left for anyone
            assert holding.acquire(timeout=PATIENCE)
        yield
    finally:
        release.set()
        await asyncio.gather(*held)


def test_in_thread_uses_the_own_threads_and_ends_them(tmp_path: Path) -> None:
    async def main() -> None:
        open_threads()
        try:
            name = await in_thread(lambda: threading.current_thread().name)
        finally:
            await close_threads()
        assert name.startswith("crontask-io")
        assert not [t for t in threading.enumerate() if t.name.startswith("crontask-io")]

    asyncio.run(main())


def test_a_pass_reads_the_sources_while_the_default_executor_is_held(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        world.write("job.yaml", doc("job"))
        open_threads()
        try:
            async with default_executor_held():
                result = await asyncio.wait_for(world.reconciler.run_pass(), PATIENCE)
        finally:
            await close_threads()
            await world.dispatcher.shutdown(0)
        assert result.ok
        assert result.plan.summary() == "1 to add, 0 to change, 0 to remove, 0 unchanged"
        assert list(world.scheduler.owned()) == ["default/job"]

    asyncio.run(main())


def test_the_runtime_applies_an_edit_while_the_default_executor_is_held(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="crontask")  # "task added" is how the edit shows
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "first.yaml").write_text(doc("first"))
    options = Options(paths=[tasks], state_dir=tmp_path / "state", shutdown_grace=1.0)

    async def main() -> None:
        started, added = asyncio.Event(), asyncio.Event()

        class Added(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                fields = getattr(record, "fields", {})
                if record.getMessage() == "task added" and fields.get("task") == "default/later":
                    added.set()  # on the loop: passes apply there

        handler = Added()
        logging.getLogger("crontask").addHandler(handler)
        stop = asyncio.Event()
        server: asyncio.Future[int] | None = None
        try:
            async with default_executor_held():
                server = asyncio.ensure_future(serve(options, stop, on_started=started.set))
                await asyncio.wait_for(started.wait(), PATIENCE)
                (tasks / "later.yaml").write_text(doc("later"))
                await asyncio.wait_for(added.wait(), PATIENCE)
        finally:
            # Stopped once the threads are let go: stopping is not what this test is about.
            stop.set()
            if server is not None:
                assert await asyncio.wait_for(server, PATIENCE) == 0
            logging.getLogger("crontask").removeHandler(handler)

    asyncio.run(main())
