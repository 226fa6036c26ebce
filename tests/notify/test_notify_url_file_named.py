"""A urlFile that holds no usable URL when a message is delivered (rotated into something
else) is named in the failure's line, as one that cannot be read is (``urlFile: PATH: ...``):
the line said only ``error="the URL must start with http://..."``, which did not say it was
the file's, nor which file. An empty one says so, as an empty secretFile does, at start too.
The URL itself is never said."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_config import NotificationConfigError, load
from tests.notify.test_notifier import T0, config, counts, finished, running


def failure_said(tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str) -> str:
    caplog.set_level(logging.DEBUG, logger="crontask.notify")
    metrics = Metrics()
    notifier = Notifier(config(tmp_path, "http://127.0.0.1:9/x"), metrics=metrics, backoff=0.001)
    (tmp_path / "url").write_text(content)  # rotated after the start

    async def body() -> None:
        notifier.on_run(finished(RunStatus.FAILED, T0))
        while counts(metrics)["failed"] == 0:
            await asyncio.sleep(0.01)

    running(notifier, body)
    (said,) = [r for r in caplog.records if r.getMessage() == "notification failed"]
    assert said.levelno == logging.ERROR
    return str(said.__dict__["fields"]["error"])


def test_a_url_file_with_no_usable_url_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    said = failure_said(tmp_path, caplog, "hooks.example/T0K3N\n")

    assert said == (
        f"urlFile: {tmp_path / 'url'}: the URL must start with http:// or https:// and hold no "
        "spaces"
    )


def test_an_empty_url_file_says_it_is_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert failure_said(tmp_path, caplog, "\n") == f"urlFile: {tmp_path / 'url'}: the file is empty"


def test_an_empty_url_file_at_start_says_so_at_its_place(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("")
    path = tmp_path / "n.yaml"
    path.write_text(
        "receivers:\n  - {name: hook, type: generic, urlFile: url}\n"
        "routes:\n  - {receiver: hook, events: [failed]}\n"
    )

    with pytest.raises(NotificationConfigError) as caught:
        load(path)

    assert str(caught.value) == (
        f"{path}:2:42: receivers[0].urlFile: {tmp_path / 'url'}: the file is empty"
    )
