"""A Slack message is cut to its bound without breaking its markup: never inside an escape
(``&amp;`` shown as ``&am``), a code block it cut into closed again, and an error's backtick
kept from ending its code span."""

from __future__ import annotations

from reconciler.core.runs import RunStatus
from reconciler.sinks import notify_payload
from reconciler.sinks.notify_payload import SLACK_TEXT_MAX
from tests.notify.test_notifier import T0, finished


def slack_text(**fields: object) -> str:
    body = notify_payload.payload(
        "definitionError" if "errors" in fields else "failed",
        key=None if "errors" in fields else "default/t",
        source=None,
        record=None if "errors" in fields else finished(RunStatus.FAILED, T0, output="x"),
        reminder=False,
        failing_since=T0,
        sent_at=T0,
        **fields,  # type: ignore[arg-type]
    )
    return str(notify_payload.slack(body)["text"])


def test_a_cut_never_splits_an_escape_and_closes_its_code_block() -> None:
    for shift in range(6):  # wherever the bound falls among the escapes
        errors = ["y" * shift + "&" * 2000]
        text = slack_text(errors=errors)
        assert len(text) <= SLACK_TEXT_MAX
        assert text.endswith("…")
        body = text.rsplit("• ", 1)[1]
        assert body.rstrip("`…").replace("&amp;", "").strip("y`") == "", body[-12:]


def test_an_output_tail_cut_short_keeps_its_code_block_closed() -> None:
    record = finished(RunStatus.FAILED, T0, output="&" * 3000)  # 5 characters each, escaped
    body = notify_payload.payload(
        "failed",
        key="default/t",
        source=None,
        record=record,
        reminder=False,
        failing_since=T0,
        sent_at=T0,
    )
    text = notify_payload.slack(body)["text"]
    assert len(text) <= SLACK_TEXT_MAX
    assert text.count("```") % 2 == 0
    assert text.endswith("```…")


def test_a_backtick_in_an_error_does_not_end_its_code_span() -> None:
    text = slack_text(errors=["a.yaml:1:1: use `crontask validate`"])
    (line,) = [line for line in text.splitlines() if line.startswith("• ")]
    assert line == "• `a.yaml:1:1: use 'crontask validate'`"
