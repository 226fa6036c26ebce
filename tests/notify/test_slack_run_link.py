"""A Slack message's link to the run stays one link whatever ``--external-url`` holds: Slack
ends a link's URL at the first ``|`` and the link at the first ``>``, and reads ``&``, ``<``
and ``>`` as the start of an escape or of markup (``https://h/a|b`` linked to ``https://h/a``
with the text ``b/runs/...|id``)."""

from __future__ import annotations

import re

import pytest

from reconciler.core.runs import RunStatus
from reconciler.sinks import notify_payload
from tests.notify.test_notifier import T0, finished


def run_line(page_url: str) -> str:
    record = finished(RunStatus.FAILED, T0, output="")
    body = notify_payload.payload(
        "failed",
        key=record.task,
        source=None,
        record=record,
        failing_since=T0,
        page_url=page_url,
        sent_at=T0,
    )
    return str(notify_payload.slack(body)["text"]).splitlines()[1]


@pytest.mark.parametrize(
    ("page_url", "linked"),
    [
        ("https://ops.example/crontask", "https://ops.example/crontask"),
        ("https://ops.example/a|b", "https://ops.example/a%7Cb"),
        ("https://ops.example/a>b<c", "https://ops.example/a&gt;b&lt;c"),
        ("https://ops.example/a&b", "https://ops.example/a&amp;b"),
    ],
)
def test_the_run_link_is_one_link(page_url: str, linked: str) -> None:
    line = run_line(page_url)
    record = finished(RunStatus.FAILED, T0, output="")
    found = re.fullmatch(r"run <([^|<>]*)\|([^|<>]*)> · .*", line)
    assert found is not None, line
    assert found.groups() == (f"{linked}/runs/{record.id}", record.id)
