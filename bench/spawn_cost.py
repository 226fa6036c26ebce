"""What one spawn costs the event loop: ``CommandRun`` and the alternatives, no scheduler.

    python bench/spawn_cost.py [--runs N] [--repeats R]

Each repeat spawns N ``/bin/true`` all started together on one event loop, each in its own
session with its output on a pipe, in one of these ways:

- ``CommandRun`` as ``crontask run`` uses it, with this process's environment plus one run
  variable as ``str`` (what the dispatcher passes), the same pre-encoded as ``bytes``, and a
  lone ``PATH`` plus the variable;
- ``reconciler.runner.process.spawn`` alone, which ``CommandRun`` uses (``subprocess.Popen``,
  exit learnt from a pidfd on the loop), same environment;
- ``asyncio.create_subprocess_exec`` with asyncio's pidfd child watcher (how ``CommandRun``
  spawned before), same environment;
- ``os.posix_spawn`` with a pidfd (cheaper, but it cannot close inherited descriptors or change
  directory; not used), same environment.

Variants alternate within each repeat; the table shows the medians of CPU time (this process:
the loop's cost, which is what delays the next start) and wall time per spawn. This is the
measurement behind the notes on spawning in ``bench/ANALYSIS.md``; it is not part of
``make bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import asyncio_pidfd_watcher, median_of

Env = Mapping[str, str] | Mapping[bytes, bytes]
Spawner = Callable[[Env], Awaitable[int]]


def _inherited(i: int) -> Env:
    return {**os.environ, "CRONTASK_RUN_ID": str(i)}


async def _command_run(env: Env) -> int:
    from reconciler.runner.command import CommandRun

    # CommandRun's env is typed as str; subprocess takes bytes as well on POSIX.
    outcome = await CommandRun(["/bin/true"], env=env).run()  # type: ignore[arg-type]
    return outcome.exit_code or 0


async def _spawn(env: Env) -> int:
    from reconciler.runner.process import spawn

    read_fd, write_fd = os.pipe()
    try:
        loop = asyncio.get_running_loop()
        # spawn()'s env is typed as str; subprocess takes bytes as well on POSIX.
        child = spawn(loop, ["/bin/true"], env=env, cwd=None, output_fd=write_fd)  # type: ignore[arg-type]
    finally:
        os.close(write_fd)
    code = await child.exited()
    os.close(read_fd)
    return code


async def _asyncio_exec(env: Env) -> int:
    read_fd, write_fd = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            "/bin/true",
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    finally:
        os.close(write_fd)
    code = await process.wait()
    os.close(read_fd)
    return code


async def _posix_spawn(env: Env) -> int:
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        pid = os.posix_spawn(
            "/bin/true",
            ["/bin/true"],
            env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, write_fd, 1),
                (os.POSIX_SPAWN_DUP2, write_fd, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(write_fd)
        os.close(devnull)
    pidfd = os.pidfd_open(pid)
    exited: asyncio.Future[None] = loop.create_future()
    loop.add_reader(pidfd, exited.set_result, None)
    await exited
    loop.remove_reader(pidfd)
    os.close(pidfd)
    os.close(read_fd)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


VARIANTS: dict[str, tuple[Spawner, Callable[[int], Env]]] = {
    "CommandRun (Popen + pidfd), inherited env as str": (_command_run, _inherited),
    "CommandRun, inherited env as bytes": (
        _command_run,
        lambda i: {**os.environb, b"CRONTASK_RUN_ID": str(i).encode()},
    ),
    "CommandRun, PATH only": (
        _command_run,
        lambda i: {"PATH": "/usr/bin:/bin", "CRONTASK_RUN_ID": str(i)},
    ),
    "runner.process.spawn alone (Popen + pidfd), inherited env": (_spawn, _inherited),
    "asyncio.create_subprocess_exec + PidfdChildWatcher, inherited env": (
        _asyncio_exec,
        _inherited,
    ),
    "os.posix_spawn + pidfd, inherited env": (_posix_spawn, _inherited),
}


async def _spawn_all(
    spawner: Spawner, make_env: Callable[[int], Env], runs: int
) -> tuple[float, float]:
    asyncio_pidfd_watcher(asyncio.get_running_loop())  # for the asyncio variant
    envs = [make_env(i) for i in range(runs)]
    cpu, wall = time.process_time(), time.perf_counter()
    codes = await asyncio.gather(*(spawner(env) for env in envs))
    if any(codes):
        raise RuntimeError(f"/bin/true failed: {sorted(set(codes))}")
    return (time.process_time() - cpu) / runs, (time.perf_counter() - wall) / runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    for r in range(args.repeats):
        order = list(VARIANTS) if r % 2 == 0 else list(reversed(VARIANTS))
        for name in order:
            spawner, make_env = VARIANTS[name]
            results[name].append(asyncio.run(_spawn_all(spawner, make_env, args.runs)))
    print(f"{args.runs} spawns of /bin/true per repeat, {args.repeats} repeats, medians")
    print(
        f"| how ({len(os.environ) + 1} variables inherited) | loop CPU µs/spawn | wall µs/spawn |"
    )
    print("|---|---|---|")
    for name, samples in results.items():
        cpu = median_of([c for c, _ in samples]) * 1e6
        wall = median_of([w for _, w in samples]) * 1e6
        print(f"| {name} | {cpu:.0f} | {wall:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
