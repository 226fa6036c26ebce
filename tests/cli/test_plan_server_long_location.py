"""``crontask plan PATH --server URL`` against a server whose tasks have long file locations:
the tasks it may keep were found by building every ending of every location's path (``a/b/c``,
``b/c``, ``c``), which is quadratic in the path's length, so that one task 100 000 folders deep
(a 200 KB answer) took gigabytes. A location is now matched by its ending, and one longer than
a server's path can be (``definitions.MAX_LOCATION``) is warned of and not matched. The work is
bounded by running the command under an address-space limit, not by timing it."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from reconciler.cli.definitions import MAX_LOCATION
from tests.cli.hostile import Handler, HostileServer
from tests.cli.test_inspect import doc

# What the command may take of address space: it runs in some 150 MiB; the ending of every
# location of the tests below took gigabytes.
LIMIT = 384 * 1024 * 1024


def _resource(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"schedule": "@daily", "command": {"args": ["true"]}},
    }


def _serve(server: HostileServer, locations: list[str]) -> None:
    """``server`` answers a task ``goneN`` from a file at each of ``locations``."""
    items = [
        {
            "key": f"default/gone{i}",
            "source": {"kind": "file", "location": location},
            "resource": _resource(f"gone{i}"),
        }
        for i, location in enumerate(locations)
    ]

    def answer(h: Handler) -> None:
        if h.path.startswith("/api/v1/sources"):
            h.send(200, {"items": []})
        elif h.path.startswith("/api/v1/tasks"):
            h.send(200, {"items": items})
        else:
            h.send(404, {"title": "Not Found", "status": 404}, "application/problem+json")

    server.answer = answer


def _limited() -> None:  # in the child, before it runs crontask
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, resource.RLIM_INFINITY))


def _plan(tasks: Path, server: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", str(tasks), "--server", server],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=_limited,  # the child's own limit, set before it execs
    )


def _tasks(tmp_path: Path) -> Path:
    """A folder with a good file and a broken ``x.yaml`` (a schedule that does not parse)."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "good.yaml").write_text(doc("hello", "@daily"))
    (tasks / "x.yaml").write_text(doc("broken", "@every 30x"))
    return tasks


def test_a_location_longer_than_a_path_is_warned_of_and_not_matched(
    tmp_path: Path, hostile: HostileServer
) -> None:
    _serve(hostile, ["a/" * 100_000 + "x.yaml:1:1"])
    done = _plan(_tasks(tmp_path), hostile.url)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "MemoryError" not in done.stderr, done.stderr[-2000:]
    assert done.returncode == 1, done.stderr[-2000:]  # x.yaml has errors
    [warning] = [line for line in done.stderr.splitlines() if "warning" in line]
    assert warning == (
        f"crontask: warning: {hostile.url} answered the task default/gone0 from a file "
        f"location longer than {MAX_LOCATION:,} characters: not matched with the files here"
    )
    # Not taken for the server's x.yaml (it may be any file): removed, where it is said cut.
    [removed] = [line for line in done.stdout.splitlines() if "default/gone0" in line]
    assert removed.startswith("- default/gone0"), done.stdout[-2000:]
    assert removed.endswith(" more characters cut])"), removed[-200:]
    assert len(removed) < 5000


def test_many_long_locations_within_the_bound_are_matched_by_their_ending(
    tmp_path: Path, hostile: HostileServer
) -> None:
    # 300 tasks, each in a file some 1 300 folders deep, within the bound: their endings were
    # 300 x 1 300 strings of 2 000 characters on average (some 800 MB).
    depth = (MAX_LOCATION - 20) // len("d999/")
    locations = [f"d{i}/" * depth + "x.yaml:1:1" for i in range(300)]
    assert all(len(location) <= MAX_LOCATION for location in locations)
    _serve(hostile, locations)
    done = _plan(_tasks(tmp_path), hostile.url)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "MemoryError" not in done.stderr, done.stderr[-2000:]
    # Each is a task of a server file at the place of the broken x.yaml: one `run` may keep.
    assert done.stdout.count("default/gone") == 300, done.stdout[-2000:]
    assert "may keep" in done.stdout or "may be kept" in done.stdout, done.stdout[-3000:]


def test_a_location_at_the_bound_is_read(tmp_path: Path, hostile: HostileServer) -> None:
    ending = "/x.yaml:1:1"
    location = "a" * (MAX_LOCATION - len(ending)) + ending
    _serve(hostile, [location])
    done = _plan(_tasks(tmp_path), hostile.url)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "longer than" not in done.stderr
    assert "default/gone0" in done.stdout, done.stdout
