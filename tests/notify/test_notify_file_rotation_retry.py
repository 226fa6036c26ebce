"""A receiver's urlFile and secretFile are read again at each attempt, so that they can be
rotated: one read while it is being rewritten in place (empty for a moment, or gone between
a delete and a rename) is tried again with the backoff, like a receiver that is down. It used
to fail the message at once. Only the receiver's own answer (a status not retried) ends a
message before its attempts. Real files, a real HTTP receiver; the rewrite ends as the first
read of it does (no sleep)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler import secretfile
from reconciler.core.runs import RunStatus
from reconciler.sinks import notify, notify_config
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from tests.notify.receiver import receiving
from tests.notify.test_notifier import SECRET, T0, config, counts, finished, running


def mid_rewrite(
    monkeypatch: pytest.MonkeyPatch, path: Path, rewritten: bytes, caught: Callable[[], None]
) -> threading.Event:
    """``caught()`` leaves ``path`` as a rewrite in place leaves it for a moment; the first
    read of it after that completes the rewrite (``rewritten``). Set once it has."""
    real = secretfile.read_secret_file
    done = threading.Event()

    def read(file: Path, limit: int) -> bytes:
        try:
            return real(file, limit)
        finally:
            if file == path and not done.is_set():
                path.write_bytes(rewritten)
                path.chmod(0o600)
                done.set()

    caught()
    monkeypatch.setattr(notify_config, "read_secret_file", read)
    return done


@pytest.mark.parametrize(
    ("name", "how"),
    [("url", "emptied"), ("url", "removed"), ("secret", "emptied"), ("secret", "removed")],
)
def test_a_file_read_mid_rotation_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, how: str
) -> None:
    metrics = Metrics()
    with receiving(SECRET) as receiver:
        notifications = config(tmp_path, receiver.url)
        path = tmp_path / name
        new = (receiver.url.replace("/hook", "/rotated") + "\n").encode() if name == "url" else None
        rewritten = new or SECRET + b"\n"

        def caught() -> None:
            if how == "emptied":
                path.write_bytes(b"")
            else:
                path.unlink()

        done = mid_rewrite(monkeypatch, path, rewritten, caught)
        notifier = Notifier(notifications, metrics=metrics, backoff=0.001)

        async def body() -> None:
            notifier.on_run(finished(RunStatus.FAILED, T0))
            while sum(counts(metrics).values()) == 0:
                await asyncio.sleep(0.01)

        running(notifier, body)
    assert done.is_set()
    assert counts(metrics) == {"dropped": 0, "failed": 0, "sent": 1}
    (got,) = receiver.received
    assert got.signed_correctly
    assert got.path == ("/rotated" if name == "url" else "/hook")


def test_a_file_that_stays_unusable_fails_the_message_after_its_attempts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    metrics = Metrics()
    notifier = Notifier(config(tmp_path, "http://127.0.0.1:9/x"), metrics=metrics, backoff=0.001)
    (tmp_path / "url").write_text("")

    async def body() -> None:
        notifier.on_run(finished(RunStatus.FAILED, T0))
        while counts(metrics)["failed"] == 0:
            await asyncio.sleep(0.01)

    running(notifier, body)
    assert counts(metrics) == {"dropped": 0, "failed": 1, "sent": 0}
    said = [r for r in caplog.records if r.getMessage().startswith("notification")]
    assert [r.getMessage() for r in said] == ["notification not delivered; retrying"] * (
        notify.MAX_ATTEMPTS - 1
    ) + ["notification failed"]
    assert said[-1].levelno == logging.ERROR  # a broken file is the operator's to mend
    (error,) = {r.__dict__["fields"]["error"] for r in said}
    assert error == f"urlFile: {tmp_path / 'url'}: the file is empty"
