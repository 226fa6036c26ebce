"""The log tail a run's end reads (``JobWatch.stop_reads().log_tail``) asks ``pods/log`` for
about as many lines as it keeps, not for ``TAIL_LINES``: the API server sends every byte of the
lines asked for, and a healthy log of long lines (65 536 lines of 400 B: 26 MB) could not
arrive within the read's bound (15 s) at all: the run's output was then lost whole. A log of
short lines, whose first answer holds every line asked for and fewer bytes than the tail keeps,
is asked again for more lines, up to ``TAIL_LINES``.

Against the project's Kubernetes emulator, which runs each Job's container as a local process
and answers ``tailLines`` as the kubelet does; and against a real HTTP server whose large
answers do not come whole within the read timeout."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client

from reconciler.core.runs import truncation_marker
from reconciler.sources import job_calls, pod_logs
from reconciler.sources.kubernetes_jobs import JobApiError, JobWatch
from reconciler.sources.pod_logs import TAIL_LINES
from tests.helpers import serve_http, wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.manifests import finished, job
from tests.k8s.support import http_call

LIMIT = 64 * 1024  # the runner's output_limit


def run_job(emulator: Emulator, name: str, script: str) -> str:
    """Run a Job of ``script`` to its end; its pod's name."""
    http_call(emulator, "POST", "/apis/batch/v1/namespaces/default/jobs", job(name, script))

    def done() -> bool:
        return any(o["metadata"]["name"] == name and finished(o) for o in emulator.objects("jobs"))

    wait_for(f"Job {name}", done, 20)
    (pod,) = [p for p in emulator.objects("pods") if p["metadata"]["labels"]["job-name"] == name]
    return str(pod["metadata"]["name"])


def asked(emulator: Emulator) -> list[int]:
    """The ``tailLines`` of each ``pods/log`` GET, in order."""
    return [
        int(r.query["tailLines"])
        for r in emulator.request_log
        if r.method == "GET" and r.path.endswith("/log")
    ]


def read(api: Any, pod: str) -> str:
    watch = JobWatch(api, ["default"])
    try:
        return asyncio.run(watch.stop_reads().log_tail("default", pod, "main", LIMIT))
    finally:
        watch.stop()


def lines(count: int, form: str) -> str:
    return f"awk 'BEGIN {{ for (i = 0; i < {count}; i++) printf \"{form}\", i }}'"


def read_through(answer: Callable[[int], tuple[int, bytes]]) -> tuple[str, list[int]]:
    """``read`` from a real HTTP server whose ``pods/log`` answer to ``tailLines`` promises
    ``answer(tailLines)[0]`` bytes and sends ``[1]`` of them (the rest never comes): what the
    end read (or why it failed), and the ``tailLines`` asked, in order."""
    ended = threading.Event()
    asks: list[int] = []

    class Log(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            count = int(parse_qs(urlsplit(self.path).query)["tailLines"][0])
            asks.append(count)
            length, sent = answer(count)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(length))
            if self.headers.get("Connection", "").lower() == "close":
                # As the API server (Go's net/http) answers a request that asks it: without
                # it, the client kept the connection this server then closed, and the next ask
                # went out on it and failed (a flaky [1024] instead of [1024, 16384]).
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(sent)
            if len(sent) < length:  # the rest is still on its way
                ended.wait(30)
                self.close_connection = True

    with serve_http(Log) as url:
        configuration = client.Configuration()
        configuration.host = url
        api: Any = client.ApiClient(configuration)
        try:
            out = read(api, "p")
        except JobApiError as err:
            out = f"failed: {err}"
        finally:
            ended.set()
            api.close()
    return out, asks


@pytest.mark.parametrize(
    ("script", "expected_asks", "cut"),
    [
        # 3 000 lines of 400 B (1.2 MB): the first 1 024 lines hold more than the tail.
        (lines(3000, "%0399d\\n"), [1024], True),
        # 20 000 short lines (~110 KB): 1 024 of them hold too little, 16 384 enough.
        (lines(20000, "%d\\n"), [1024, 16384], True),
        # 70 000 empty lines: 16 384 bytes in 16 384 lines; TAIL_LINES hold the tail.
        (lines(70000, "\\n"), [1024, 16384, TAIL_LINES], True),
        # A short log, its last line without a newline: all of it at the first ask.
        ("echo one; echo two; printf three", [1024], False),
    ],
    ids=["long-lines", "short-lines", "empty-lines", "short-log"],
)
def test_the_end_asks_for_about_as_many_lines_as_it_keeps(
    emulator: Emulator, k8s_api_client: Any, script: str, expected_asks: list[int], cut: bool
) -> None:
    pod = run_job(emulator, "logs", script)
    whole = emulator.pod_log(pod)
    before = len(asked(emulator))
    out = read(k8s_api_client, pod)
    assert asked(emulator)[before:] == expected_asks
    # The last LIMIT bytes of the log, marked as cut (how much was cut before the lines
    # asked for is not known); a log shorter than that, whole and unmarked.
    assert out == (f"{truncation_marker(None)}\n{whole[-LIMIT:]}" if cut else whole)


def test_a_large_log_that_would_not_come_in_time_whole_keeps_its_tail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An API server whose answers of more than 2 048 lines of 400 B do not come whole within
    the read timeout (26 MB for ``TAIL_LINES``, at 1.5 MB/s 17 s: more than the 15 s the
    end's read has; here the rest of such an answer never comes): the tail the end keeps
    needs 1 024 lines, and comes (whole: the bound is never waited out)."""
    monkeypatch.setattr(job_calls, "STOP_READ_TIMEOUT", (5.0, 3.0))
    line = b"x" * 399 + b"\n"
    out, asks = read_through(lambda count: (count * len(line), line * min(count, 2048)))
    assert out == f"{truncation_marker(None)}\n" + (line * 1024)[-LIMIT:].decode()
    assert asks == [1024]


def test_a_second_ask_that_brings_too_much_gives_way_to_the_first(
    emulator: Emulator, k8s_api_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Long lines before 1 024 short ones: the first ask holds every line asked for and too
    few bytes, and the second brings the long lines again, more than an ask after the first
    may (``TOO_MUCH`` times the tail, here once): the first ask's lines, the newest, are kept,
    marked cut, rather than the read failing whole."""
    monkeypatch.setattr(pod_logs, "TOO_MUCH", 1)
    script = lines(200, "%01699d\\n") + "; " + lines(1024, "ok\\n")
    pod = run_job(emulator, "logs", script)
    whole = emulator.pod_log(pod)
    before = len(asked(emulator))
    out = read(k8s_api_client, pod)
    assert asked(emulator)[before:] == [1024, 16384]
    assert out == f"{truncation_marker(None)}\n" + "ok\n" * 1024
    assert whole.endswith("ok\n" * 1024)


def test_a_second_ask_that_does_not_come_in_time_gives_way_to_the_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An API server that answers the first ask (1 024 short lines) and never the rest of the
    second: the end keeps the first ask's lines within the read's bound, not an error. The
    bound is for the whole read, both asks: 1.5 s, room for a loaded machine's first ask."""
    monkeypatch.setattr(job_calls, "STOP_READ_TIMEOUT", (5.0, 1.5))
    out, asks = read_through(lambda count: (count * 3, b"ok\n" * (count if count == 1024 else 1)))
    assert asks == [1024, 16384], out[:300]
    assert out == f"{truncation_marker(None)}\n" + "ok\n" * 1024
