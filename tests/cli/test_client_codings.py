"""A compressed answer cannot take the client past its bounds: crontask asks for none
(``Accept-Encoding: identity``), reads one layer of gzip or deflate that a server sends anyway
under the 64 MiB bound, and refuses more than one layer or a coding it does not read. httpx
decoded every layer a server stacked, each chunk whole, before a byte was counted: 3 MiB of
``gzip, gzip`` took 6 GB of memory and 46 s, past the bound and the deadline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib

import pytest

from reconciler.cli import client
from tests.cli.hostile import Handler, HostileServer, assert_one_line_error, cli

MIB = 1024 * 1024


def zeros_gzip(size: int) -> bytes:
    """``size`` bytes of ``0`` (the inside of a JSON string), gzipped: about a thousandth."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    block = b"0" * (4 * MIB)
    parts = [packer.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, packer.flush()])


@pytest.fixture(scope="module")
def stacked_bomb() -> bytes:
    """256 MiB of zeros in two layers of gzip: some 1.5 KiB on the wire."""
    return zlib.compress(zeros_gzip(256 * MIB), 9, wbits=31)


def answer(body: bytes, coding: str, headers: dict[str, str] | None = None) -> object:
    def send(h: Handler) -> None:
        if headers is not None:
            headers.update(h.headers.items())
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Encoding", coding)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return send


@pytest.mark.parametrize(
    ("coding", "wbits"), [("gzip", 31), ("x-gzip", 31), ("deflate", 15), ("identity", None)]
)
def test_one_layer_is_read_and_none_is_asked_for(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], coding: str, wbits: int | None
) -> None:
    body = json.dumps({"items": [], "metadata": {"continue": None}}).encode()
    sent = body if wbits is None else zlib.compress(body, 6, wbits=wbits)
    seen: dict[str, str] = {}
    hostile.answer = answer(sent, coding, seen)  # type: ignore[assignment]
    assert cli("tasks", "--server", hostile.url, "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"items": []}
    assert seen["Accept-Encoding"] == "identity"


def test_a_gzip_bomb_is_refused_at_the_bound(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile.answer = answer(zeros_gzip(client.MAX_ANSWER_BYTES + 4 * MIB), "gzip")  # type: ignore[assignment]
    assert cli("tasks", "--server", hostile.url) == 1
    _, err = capsys.readouterr()
    assert_one_line_error(1, err, f"{hostile.url} answered more than 64 MiB (refused)")


@pytest.mark.parametrize("coding", ["gzip, gzip", "br", "zstd", "compress", "gzip, identity, gzip"])
def test_a_coding_crontask_does_not_read_is_refused(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], coding: str
) -> None:
    hostile.answer = answer(b"{}", coding)  # type: ignore[assignment]
    assert cli("tasks", "--server", hostile.url) == 1
    _, err = capsys.readouterr()
    assert_one_line_error(
        1, err, f"{hostile.url} answered in a Content-Encoding crontask does not read"
    )


def test_a_body_that_does_not_decode_is_one_line(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile.answer = answer(b"not gzip at all", "gzip")  # type: ignore[assignment]
    assert cli("tasks", "--server", hostile.url) == 1
    _, err = capsys.readouterr()
    assert_one_line_error(1, err, "answered a body its Content-Encoding does not decode")


# Runs crontask, then prints its peak memory. A child's peak counts what it held before its
# exec, so crontask is started from this small process, not from pytest's large one.
LAUNCHER = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stderr=subprocess.PIPE, text=True, check=False)
sys.stderr.write(done.stderr)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB
"""


def test_a_stacked_gzip_bomb_is_refused_in_little_memory(
    hostile: HostileServer, stacked_bomb: bytes
) -> None:
    """The real program, refused at once in a fraction of what the bomb inflates to."""
    hostile.answer = answer(stacked_bomb, "gzip, gzip")  # type: ignore[assignment]
    argv = [sys.executable, "-m", "reconciler", "tasks", "--server", hostile.url]
    environ = {k: v for k, v in os.environ.items() if k != "CRONTASK_TOKEN"}
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *argv],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    code, peak_kib = (int(n) for n in done.stdout.split())
    assert_one_line_error(code, done.stderr, "does not read: gzip, gzip")
    assert peak_kib * 1024 < 200 * MIB  # the bomb is 256 MiB inside
