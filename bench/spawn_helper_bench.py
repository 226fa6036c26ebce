"""Would a spawn helper process lift sustained starts toward 80 % of the floor? (issue 17)

    python bench/spawn_helper_bench.py [--n 1000] [--rounds 5] [--loop-us 280] [--store-us 140]
                                       [--helpers 1,2,4] [--threaded 2]
    python bench/spawn_helper_bench.py --worker MODE N [--loop-us U] [--store-us U]
                                       [--helpers K] [--pipes parent|helper]
                                       [--reap helper|parent] [--threads T]

N ``/bin/true`` all due at one instant T; every variant in a fresh interpreter, once a round
(the order rotated), with the per-run work given and with half of it:

- ``floor``/``threads``: ``floor_bench.py``'s two ways; a round's floor is the faster.
- ``inproc``: as crontask starts a command today, ``runner.process.spawn_soon(start_at=T)``
  submitted ahead of T as a run claimed ahead is (the Spawner's threads, ``runner.libc_spawn``,
  the results handed to the loop, the exit learnt from a pidfd).
- ``helper``: K helper processes (``--helpers``), forked before any thread starts, get the
  requests (argv, env, cwd, T) ahead over a ``SOCK_SEQPACKET`` socketpair, dealt out in turn;
  each starts them at T with ``runner.libc_spawn`` (the child set up as in ``inproc``), reaps
  on SIGCHLD with ``waitpid(-1, WNOHANG)`` and reports ``(request, pid, instant)`` and
  ``(pid, status)`` in batches. ``--pipes parent``: the output pipe's write end comes with the
  request (SCM_RIGHTS), held by the helper until the start; ``--pipes helper``: the helper
  makes the pipe at the start and its read end goes back with the report.
- ``helper`` with ``--reap parent``: the helper starts each process with ``clone(CLONE_PARENT)``
  and ``execve`` (a fork of the small helper, not ``posix_spawn``), so that the process is the
  loop's own child, as with ``inproc``: its exit is learnt and it is reaped there, by crontask's
  ``runner.child.Child`` (a pidfd), and what signals it or its session stays where it is now.
- ``helper`` with ``--threads T``: each helper starts processes from T threads of its own
  (``posix_spawn`` lets go of the helper's GIL), its main thread taking requests and reaping;
  ``--threaded K`` adds K such helpers of 4 threads to a comparison (fewer processes to keep
  than one helper per start under way).

A run, once the loop knows it started, burns ``--loop-us`` of CPU on the loop's thread (half
then, half after its exit), reads its output to EOF, awaits its exit, and hands its record to
a store thread that burns ``--store-us`` (``time.thread_time`` busy-waits hold the GIL, as
Python code does), on top of what handling the process costs each variant ("loop µs/run": the
loop thread's whole CPU over the burst, a run). Start = the spawn returned (in the thread or
helper that made it: ``CLOCK_MONOTONIC`` is the machine's); rate = (N - 1) / (last start -
first start), as ``floor_bench.py`` counts; done = the store thread finished the record.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import heapq
import os
import pickle
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Sequence
from pathlib import Path
from queue import SimpleQueue
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Json, emit, median_of, percentile, run_worker

from reconciler.runner.child import Child

ARGV = ["/bin/true"]
ENV = {"PATH": "/usr/bin:/bin"}
LEAD = 0.5  # seconds from the last request sent to T
BATCH = 128  # requests or reports a message at most (SCM_RIGHTS carries 253 descriptors)
RECV_BYTES = 1 << 20
FLUSH_EVERY = 16  # starts a helper makes before it reports them
# (request id, argv, env, cwd, due): what the parent sends; ("s", request id, pid, instant),
# ("e", request id, errno, message, program) and ("x", pid, wait status): what the helper reports.
Request = tuple[int, list[str], dict[str, str], str | None, float]


def burn(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU, holding the GIL."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@dataclasses.dataclass
class Tally:
    due: float
    began: list[float] = dataclasses.field(default_factory=list)
    known: list[float] = dataclasses.field(default_factory=list)
    done: list[float] = dataclasses.field(default_factory=list)
    loop_cpu: float = 0.0  # the loop thread's CPU from the requests' sending to the last record


class Store:
    """One thread that takes each run's record and spends ``cost`` seconds of CPU on it."""

    def __init__(self, cost: float, tally: Tally) -> None:
        self._cost, self._tally = cost, tally
        self._queue: SimpleQueue[bool] = SimpleQueue()
        self.put = self._queue.put  # True: a record; False: no more
        self._thread = threading.Thread(target=self._work, name="store", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.put(False)
        self._thread.join()

    def _work(self) -> None:
        while self._queue.get():
            burn(self._cost)
            self._tally.done.append(time.monotonic())


async def drain(fd: int) -> None:
    """Read ``fd`` on the loop until EOF, then close it."""
    loop = asyncio.get_running_loop()
    eof: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:
            loop.remove_reader(fd)
            eof.set_result(None)

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    try:
        await eof
    finally:
        os.close(fd)


async def after_start(read_fd: int, exited: Awaitable[int], loop_cost: float, store: Store) -> None:
    """A run's work once the loop knows its process started."""
    burn(loop_cost / 2)
    await drain(read_fd)
    await exited
    burn(loop_cost / 2)
    store.put(True)


# -- in process: crontask's Spawner ---------------------------------------------------------


async def inproc(n: int, loop_cost: float, store_cost: float) -> Tally:
    from reconciler.runner import process

    async def warm() -> None:
        child, fd = await process.spawn_soon(ARGV, env=ENV, cwd=None)
        await drain(fd)
        await child.exited()

    await asyncio.gather(*(warm() for _ in range(process.spawner().threads)))
    cpu = time.thread_time()
    tally = Tally(due=time.monotonic() + LEAD)
    store = Store(store_cost, tally)

    async def run() -> None:
        child, fd = await process.spawn_soon(ARGV, env=ENV, cwd=None, start_at=tally.due)
        tally.known.append(time.monotonic())
        assert child.began is not None
        tally.began.append(child.began)
        await after_start(fd, child.exited(), loop_cost, store)

    await asyncio.gather(*(run() for _ in range(n)))
    store.close()
    tally.loop_cpu = time.thread_time() - cpu
    return tally


# -- a helper process -----------------------------------------------------------------------


def fork_helper(make_pipes: bool, clone_parent: bool = False, threads: int = 1) -> socket.socket:
    """Fork the helper (before any thread starts); the parent's end of its socket."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if os.fork() == 0:
        ours.close()
        try:
            Helper(theirs, make_pipes, clone_parent, threads).serve()
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    theirs.close()
    return ours


class Helper:
    """The helper's one thread: requests in, starts at their instant, children reaped. With
    ``threads`` > 1 the starts are made by that many threads of the helper (the C library's
    ``posix_spawn`` lets go of the helper's GIL), its one thread taking requests and reaping."""

    def __init__(
        self, sock: socket.socket, make_pipes: bool, clone_parent: bool = False, threads: int = 1
    ) -> None:
        from reconciler.runner import libc_spawn

        spawner = libc_spawn.load()
        assert spawner is not None, "needs glibc 2.34+"
        self._spawner, self._sock, self._make_pipes = spawner, sock, make_pipes
        self._start = ParentClone().spawn if clone_parent else spawner.spawn
        self._reaps = not clone_parent  # with CLONE_PARENT the processes are the parent's
        self._due: list[tuple[float, int, Request, int]] = []  # heap: due, request id, ...
        self._out: list[tuple[Any, ...]] = []
        self._out_fds: list[int] = []
        self._children = 0
        self._open = True
        self._lock = threading.Lock()  # _out, _out_fds, _children, _inflight with threads
        self._inflight = 0
        self._pool = (
            concurrent.futures.ThreadPoolExecutor(threads, "start") if threads > 1 else None
        )
        self._wake, self._wake_w = os.pipe()
        os.set_blocking(self._wake, False)
        os.set_blocking(self._wake_w, False)
        signal.set_wakeup_fd(self._wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the select through wake_w
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._sock, selectors.EVENT_READ)
        selector.register(self._wake, selectors.EVENT_READ)
        while self._open or self._children or self._due or self._inflight:
            timeout = max(0.0, self._due[0][0] - time.monotonic()) if self._due else None
            for key, _ in selector.select(timeout):
                if key.fileobj is self._sock:
                    self._receive()
                else:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self._wake, 4096):
                            pass  # a SIGCHLD (or more): reaped below
            self._start_due()
            self._reap()
            self._flush()

    def _receive(self) -> None:
        msg, fds, _, _ = socket.recv_fds(self._sock, RECV_BYTES, BATCH, socket.MSG_CMSG_CLOEXEC)
        if not msg:  # the parent is gone: what runs is reaped, nothing more starts
            self._open = False
            return
        requests: list[Request] = pickle.loads(msg)  # noqa: S301 - our own parent's
        fd_of = iter(fds)
        for request in requests:
            fd = -1 if self._make_pipes else next(fd_of)
            heapq.heappush(self._due, (request[4], request[0], request, fd))

    def _start_due(self) -> None:
        started = 0
        while self._due and self._due[0][0] <= time.monotonic():
            _, rid, (_, argv, env, cwd, _), fd = heapq.heappop(self._due)
            if self._pool is not None:
                with self._lock:
                    self._inflight += 1
                self._pool.submit(self._start_one, rid, argv, env, cwd, fd)
                continue
            self._start_one(rid, argv, env, cwd, fd)
            started += 1
            if started % FLUSH_EVERY == 0:  # the parent hears of the first starts before the last
                self._reap()
                self._flush()

    def _start_one(
        self, rid: int, argv: list[str], env: dict[str, str], cwd: str | None, fd: int
    ) -> None:
        read_fd = -1
        if self._make_pipes:
            read_fd, fd = os.pipe()
        try:
            pid = self._start(argv, env, cwd, fd)
        except OSError as error:  # reported as the run's own failure
            with self._lock:
                self._out.append(("e", rid, error.errno, error.strerror, argv[0]))
                self._inflight -= self._pool is not None
            if read_fd >= 0:
                os.close(read_fd)
            return
        finally:
            os.close(fd)
        with self._lock:
            self._children += self._reaps
            self._out.append(("s", rid, pid, time.monotonic()))
            if read_fd >= 0:
                self._out_fds.append(read_fd)
            self._inflight -= self._pool is not None
        if self._pool is not None:
            with contextlib.suppress(BlockingIOError):
                os.write(self._wake_w, b"s")  # the helper's thread reports it

    def _reap(self) -> None:
        while self._children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            with self._lock:  # its start may not be told yet: the parent waits for it then
                self._children -= 1
                self._out.append(("x", pid, status))

    def _flush(self) -> None:
        with self._lock:
            out, fds = self._out, self._out_fds
            self._out, self._out_fds = [], []
        while out:
            cut = min(len(out), BATCH)  # so that no message carries more descriptors
            carried = sum(e[0] == "s" for e in out[:cut]) if self._make_pipes else 0
            socket.send_fds(self._sock, [pickle.dumps(out[:cut])], fds[:carried])
            for fd in fds[:carried]:
                os.close(fd)
            del out[:cut], fds[:carried]


class ParentClone:
    """Starts a process as a child of this process's parent: ``clone(CLONE_PARENT | SIGCHLD)``
    through the C library's ``syscall`` (a fork of this single-threaded helper: its memory
    copied on write, not shared as ``posix_spawn``'s ``vfork`` does), then, in the child, a new
    session, the descriptors and SIGPIPE/SIGXFSZ set up as ``runner.libc_spawn`` does, and
    ``execve``. An ``execve`` that fails is told through a close-on-exec pipe (as ``Popen``
    does); the failed child is then the parent's to reap (not done here: the bench's program
    always starts)."""

    CLONE_PARENT = 0x00008000
    SYS_CLONE = {"x86_64": 56, "aarch64": 220}[os.uname().machine]

    def __init__(self) -> None:
        import ctypes

        self._libc = ctypes.CDLL(None, use_errno=True)
        self._syscall = self._libc.syscall
        self._syscall.restype = ctypes.c_long
        self._close_range = self._libc.close_range
        self._devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)

    def spawn(self, argv: list[str], env: dict[str, str], cwd: str | None, fd: int) -> int:
        import ctypes
        import shutil

        program = shutil.which(argv[0], path=env.get("PATH")) or argv[0]
        error_r, error_w = os.pipe2(os.O_CLOEXEC)
        flags = self.CLONE_PARENT | signal.SIGCHLD
        pid: int = self._syscall(self.SYS_CLONE, flags, None, None, None, None)
        if pid == 0:  # the child: no return from here
            try:
                os.setsid()
                os.dup2(self._devnull, 0)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.dup2(error_w, 3, inheritable=False)
                self._close_range(4, ctypes.c_uint(-1), 0)  # os.closerange calls close() each
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
                if cwd is not None:
                    os.chdir(cwd)
                os.execve(program, argv, env)  # noqa: S606 - a program and its argv, as a run's
            except OSError as error:
                os.write(3, str(error.errno).encode())
            finally:
                os._exit(127)
        os.close(error_w)
        if pid < 0:
            os.close(error_r)
            raise OSError(ctypes.get_errno(), "clone failed", argv[0])
        try:
            told = os.read(error_r, 16)
        finally:
            os.close(error_r)
        if told:
            number = int(told)
            raise OSError(number, os.strerror(number), argv[0])
        return pid


class Client:
    """The loop's side of a helper: sends requests ahead, settles starts and exits."""

    def __init__(
        self,
        sock: socket.socket,
        make_pipes: bool,
        loop: asyncio.AbstractEventLoop,
        clone_parent: bool = False,
    ) -> None:
        self._sock, self._make_pipes, self._clone_parent = sock, make_pipes, clone_parent
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._readable)
        self._starts: dict[int, asyncio.Future[tuple[int, float, int]]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._read_fds: dict[int, int] = {}  # request id: read end kept for it (parent pipes)
        self._children: dict[int, Child] = {}  # with CLONE_PARENT: our own, watched here
        self._early: dict[int, int] = {}  # exits told before their start

    def send(self, requests: Sequence[Request], loop: asyncio.AbstractEventLoop) -> None:
        """Send ``requests`` (blocking: ahead of their instant, before the burst)."""
        self._sock.setblocking(True)
        for first in range(0, len(requests), BATCH):
            chunk = list(requests[first : first + BATCH])
            write_fds = []
            for rid, *_ in chunk:
                self._starts[rid] = loop.create_future()
                if not self._make_pipes:
                    self._read_fds[rid], write_fd = os.pipe()
                    write_fds.append(write_fd)
            socket.send_fds(self._sock, [pickle.dumps(chunk)], write_fds)
            for fd in write_fds:
                os.close(fd)
        self._sock.setblocking(False)

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self._sock.fileno())
        self._sock.close()

    async def started(self, rid: int) -> tuple[int, float, int]:
        try:
            return await self._starts[rid]  # settled already, or when the report comes
        finally:
            del self._starts[rid]

    async def exited(self, pid: int) -> int:
        if self._clone_parent:
            return await self._children.pop(pid).exited()
        try:
            return await self._exits[pid]  # set already, or when the exit comes
        finally:
            del self._exits[pid]

    def _readable(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(
                    self._sock, RECV_BYTES, BATCH, socket.MSG_CMSG_CLOEXEC
                )
            except BlockingIOError:
                return
            if not msg:
                raise RuntimeError("the spawn helper is gone")
            fd_of = iter(fds)
            for event in pickle.loads(msg):  # noqa: S301 - our own child's
                if event[0] == "e":
                    _, rid, number, message, argv0 = event
                    self._starts[rid].set_exception(OSError(number, message, argv0))
                elif event[0] == "s":
                    _, rid, pid, began = event
                    fd = next(fd_of) if self._make_pipes else self._read_fds.pop(rid)
                    if self._clone_parent:
                        self._children[pid] = Child(loop, pid)
                    else:
                        self._exits[pid] = loop.create_future()
                        if pid in self._early:
                            self._exits[pid].set_result(self._early.pop(pid))
                    self._starts[rid].set_result((pid, began, fd))
                elif event[1] in self._exits:
                    self._exits[event[1]].set_result(os.waitstatus_to_exitcode(event[2]))
                else:  # reaped by the helper before its start was told (a helper's threads)
                    self._early[event[1]] = os.waitstatus_to_exitcode(event[2])


async def helper(
    n: int,
    loop_cost: float,
    store_cost: float,
    socks: list[socket.socket],
    make_pipes: bool,
    clone_parent: bool,
) -> Tally:
    loop = asyncio.get_running_loop()
    clients = [Client(sock, make_pipes, loop, clone_parent) for sock in socks]

    async def one(client: Client, rid: int, tally: Tally | None, store: Store | None) -> None:
        pid, began, fd = await client.started(rid)
        if tally is None or store is None:  # a warm-up start
            await drain(fd)
            await client.exited(pid)
            return
        tally.known.append(time.monotonic())
        tally.began.append(began)
        await after_start(fd, client.exited(pid), loop_cost, store)

    now = time.monotonic()
    for i, client in enumerate(clients):
        client.send([(-1 - i, ARGV, ENV, None, now)], loop)
    await asyncio.gather(*(one(c, -1 - i, None, None) for i, c in enumerate(clients)))
    cpu = time.thread_time()
    tally = Tally(due=0.0)
    store = Store(store_cost, tally)
    due = time.monotonic() + 0.05 * n / 1000 + LEAD
    for i, client in enumerate(clients):
        client.send([(rid, ARGV, ENV, None, due) for rid in range(i, n, len(clients))], loop)
    tally.due = due
    runs = [one(clients[rid % len(clients)], rid, tally, store) for rid in range(n)]
    await asyncio.gather(*runs)
    store.close()
    tally.loop_cpu = time.thread_time() - cpu
    for client in clients:
        client.detach(loop)
    return tally


def measure(args: argparse.Namespace) -> Json:
    if args.mode in ("floor", "threads"):
        import floor_bench

        floor = floor_bench.processes if args.mode == "floor" else floor_bench.threads
        return {"mode": args.mode, "n": args.n, "rate": floor(args.n)["rate"]}
    make_pipes = args.pipes == "helper"
    # Before any thread starts (the store's, the spawner's, the loop's executor).
    helpers = args.helpers[0] if args.mode == "helper" else 0
    clone_parent = args.reap == "parent"
    socks = [fork_helper(make_pipes, clone_parent, args.threads) for _ in range(helpers)]
    loop_cost, store_cost = args.loop_us / 1e6, args.store_us / 1e6

    if args.mode == "helper":
        tally = asyncio.run(helper(args.n, loop_cost, store_cost, socks, make_pipes, clone_parent))
    else:
        tally = asyncio.run(inproc(args.n, loop_cost, store_cost))
    for _ in socks:
        os.wait()
    late = [b - tally.due for b in tally.began]
    return {
        "mode": args.mode,
        "n": args.n,
        "rate": (len(tally.began) - 1) / (max(tally.began) - min(tally.began)),
        "p50_ms": percentile(late, 0.5) * 1e3,
        "p99_ms": percentile(late, 0.99) * 1e3,
        "known_p99_ms": percentile([k - tally.due for k in tally.known], 0.99) * 1e3,
        "done_p99_ms": percentile([d - tally.due for d in tally.done], 0.99) * 1e3,
        "loop_us": tally.loop_cpu / args.n * 1e6,
    }


def variants(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(label, worker arguments) of every measurement in a round."""
    out = [("floor processes", ["floor", str(args.n)]), ("floor threads", ["threads", str(args.n)])]
    for label, scale in (("", 1.0), (" half", 0.5)):
        loop_us, store_us = args.loop_us * scale, args.store_us * scale
        work = ["--loop-us", f"{loop_us:g}", "--store-us", f"{store_us:g}"]
        out.append((f"inproc{label}", ["inproc", str(args.n), *work]))
        for k in args.helpers:
            out.append((f"helper x{k}{label}", ["helper", str(args.n), *work, "--helpers", str(k)]))
        k = max(args.helpers)
        parent = [*work, "--helpers", str(k), "--pipes", "parent"]
        out.append((f"helper x{k} parent pipes{label}", ["helper", str(args.n), *parent]))
        for k in args.helpers:
            reap = [*work, "--helpers", str(k), "--reap", "parent"]
            out.append((f"helper x{k} clone-parent{label}", ["helper", str(args.n), *reap]))
        for k in args.threaded:
            threaded = [*work, "--helpers", str(k), "--threads", "4"]
            out.append((f"helper x{k} 4 threads{label}", ["helper", str(args.n), *threaded]))
    return out


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def compare(args: argparse.Namespace) -> int:
    """Every variant once a round, the order rotated; a table of medians [ranges]."""
    print(f"before: {uptime()}", flush=True)
    todo = variants(args)
    results: dict[str, list[Json]] = {name: [] for name, _ in todo}
    for round_ in range(args.rounds):
        shift = round_ % len(todo)
        answers: dict[str, Json] = {}
        for name, worker_args in todo[shift:] + todo[:shift]:
            answer = run_worker("spawn_helper_bench", worker_args, timeout=120)
            if "error" in answer:
                print(f"{name}: {answer['error']}", file=sys.stderr)
            else:
                answers[name] = answer
        # The floor is the faster of the two ways (floor_bench.py), in the same round.
        floor = max((answers[f]["rate"] for f in answers if f.startswith("floor")), default=0)
        for name, answer in answers.items():
            results[name].append({**answer, "floor_pct": 100 * answer["rate"] / floor})
        print(f"round {round_ + 1} of {args.rounds}: floor {floor:,.0f}/s; {uptime()}", flush=True)
    print(
        f"\nN={args.n}, {args.rounds} rounds; a run burns {args.loop_us:g} µs on the loop and "
        f"{args.store_us:g} µs in the store's thread (half: {args.loop_us / 2:g} + "
        f"{args.store_us / 2:g}); median [min-max]; % of the same round's floor\n"
    )
    print("| variant | starts/s | % of floor | p50 ms | p99 ms | done p99 ms | loop µs/run |")
    print("|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        cells = [cell(rows, key) for key in ("rate", "floor_pct", "p50_ms", "p99_ms")]
        cells += [cell(rows, key) for key in ("done_p99_ms", "loop_us")]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


def cell(rows: list[Json], key: str) -> str:
    values = [row[key] for row in rows if key in row]
    return f"{median_of(values):,.0f} [{min(values):,.0f}-{max(values):,.0f}]" if values else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help="run one measurement")
    parser.add_argument("mode", nargs="?", choices=["floor", "threads", "inproc", "helper"])
    parser.add_argument("n", nargs="?", type=int)
    parser.add_argument("--n", dest="count", type=int, default=1000, help="runs in the burst")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop-us", type=float, default=280.0, help="loop CPU a run")
    parser.add_argument("--store-us", type=float, default=140.0, help="store CPU a run")
    parser.add_argument(
        "--helpers",
        type=lambda text: [int(k) for k in text.split(",")],
        default=[1, 2, 4],
        help="helper processes (a worker: the first; the comparison: each, comma-separated)",
    )
    parser.add_argument("--pipes", choices=["parent", "helper"], default="helper")
    parser.add_argument("--threads", type=int, default=1, help="a worker: threads per helper")
    parser.add_argument(
        "--threaded",
        type=lambda text: [int(k) for k in text.split(",") if k],
        default=[],
        help="the comparison: also K helpers of 4 threads each, for each K (comma-separated)",
    )
    parser.add_argument(
        "--reap",
        choices=["parent", "helper"],
        default="helper",
        help="parent: the helper starts each process as its parent's child (CLONE_PARENT)",
    )
    args = parser.parse_args(argv)
    if not args.worker:
        args.n = args.count
        return compare(args)
    if args.mode is None or args.n is None:
        parser.error("--worker needs MODE and N")
    emit(measure(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
