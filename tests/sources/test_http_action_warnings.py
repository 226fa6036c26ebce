"""An http task whose ``expectStatus`` has a part that matches no status beside parts that do,
or whose URL's credentials stand beside an ``Authorization`` header, is read, with a warning:
``crontask validate`` prints it, ``crontask run`` logs it when the action comes or changes. It
was refused, and a file is applied whole: at an upgrade, every task of such a file stopped."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reconciler.sources.files import DirectorySource
from reconciler.sources.survey import survey
from tests.controller.test_reconcile import World, doc, play

HTTP = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {{name: hook}}
spec:
  schedule: "* * * * *"
  http:
    url: http://user:pw@hooks.example/notify
    expectStatus: "{ranges}"
    headers: [{{name: Authorization, value: Bearer abc}}]
"""
RANGES = "200,299-200"
STATUSES = (
    f"expectStatus {RANGES!r}: '299-200' matches no status: a range goes from its lowest "
    "status to its highest ('200-299')"
)
CREDENTIALS = (
    "the url's user name or password are sent as Basic credentials: the header "
    "'Authorization' is not sent (keep one of them)"
)


def test_validate_reads_both_tasks_and_warns(tmp_path: Path) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_text(HTTP.format(ranges=RANGES) + "---\n" + doc("plain"))
    said = survey(DirectorySource([tmp_path]), workers=1)
    assert (said.problems, said.tasks, said.warned) == ([], 2, 2)
    assert said.warnings == [
        f"{path}:1:1: warning: default/hook: http {STATUSES}",
        f"{path}:1:1: warning: default/hook: http {CREDENTIALS}",
    ]


def test_run_starts_both_tasks_and_logs_the_warnings_when_the_action_comes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def warned() -> list[tuple[object, object]]:
        said = [r for r in caplog.records if r.getMessage() == "http action warning"]
        caplog.clear()
        assert all(r.levelno == logging.WARNING for r in said)
        return [(r.fields["task"], r.fields["why"]) for r in said]  # type: ignore[attr-defined]

    async def body(w: World) -> None:
        caplog.set_level(logging.INFO, logger="crontask.controller")
        w.write("a.yaml", HTTP.format(ranges=RANGES) + "---\n" + doc("plain"))
        assert w.reconcile() == "2 to add, 0 to change, 0 to remove, 0 unchanged"
        assert warned() == [("default/hook", STATUSES), ("default/hook", CREDENTIALS)]
        w.write("a.yaml", HTTP.format(ranges=RANGES) + "  suspend: true\n---\n" + doc("plain"))
        assert w.reconcile().startswith("0 to add, 1 to change")
        assert warned() == []  # the action did not change: told once
        w.write("a.yaml", HTTP.format(ranges="200-299") + "---\n" + doc("plain"))
        assert w.reconcile().startswith("0 to add, 1 to change")
        assert warned() == [("default/hook", CREDENTIALS)]

    play(tmp_path, body)
