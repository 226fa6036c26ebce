"""A host name whose lookup never answers holds up the requests to it alone: ``crontask run``'s
other http tasks (and notifications) still resolve their names and run, and a stop is not
held up by the lookups under way. The lookup of one name is made to hang for a minute in
crontask's own interpreter (a ``sitecustomize`` on its ``PYTHONPATH``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from tests.cli.hostile import hostile_server
from tests.e2e.conftest import Crontask
from tests.helpers import hanging_lookups, wait_for

pytestmark = pytest.mark.e2e

HANGS = "lookup.hangs.test"


def http_task(name: str, url: str) -> str:
    return (
        "apiVersion: crontask.dev/v1alpha1\n"
        "kind: CronTask\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        '  schedule: "* * * * * *"\n'
        "  concurrencyPolicy: Allow\n"
        "  timeoutSeconds: 1\n"
        f'  http: {{method: GET, url: "{url}"}}\n'
    )


@pytest.mark.slow  # the lookup deadlines waited out: 13 s
def test_a_name_that_never_resolves_holds_up_nothing_else(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    path = hanging_lookups(site, HANGS)
    with hostile_server() as server:
        app = crontask("--log-level", "info", env={"PYTHONPATH": path})
        port = server.url.rsplit(":", 1)[1]
        (app.tasks / "hangs.yaml").write_text(http_task("hangs", f"http://{HANGS}/"))
        (app.tasks / "ok.yaml").write_text(http_task("ok", f"http://localhost:{port}/"))

        def late_success() -> bool:
            # More lookups of HANGS under way than asyncio's default executor has threads
            # (min(32, cores + 4)): before, they took every one, and "ok" timed out too.
            timed_out = [r for r in app.runs("default/hangs") if r.status is RunStatus.TIMED_OUT]
            if len(timed_out) < 10:
                return False
            tenth = sorted(r.scheduled_at for r in timed_out)[9]
            return any(
                r.status is RunStatus.SUCCEEDED and r.scheduled_at > tenth
                for r in app.runs("default/ok")
            )

        wait_for("a success of ok after ten lookups of the other name hung", late_success, 40)
        started = time.monotonic()
        assert app.stop() == 0
    # The lookups still hang (a minute each): the exit did not wait for them.
    assert time.monotonic() - started < 20
