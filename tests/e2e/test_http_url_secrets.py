"""An http task's URL may carry its secret (``user:password@``, ``?token=``): ``crontask run``
never logs it, whatever else is configured (httpx's own line names every request's URL)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reconciler.core.runs import RunStatus
from tests.cli.hostile import HostileServer, hostile_server
from tests.e2e.conftest import Crontask
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

PASSWORD = "Url-Passw0rd-Secret"  # noqa: S105 - a test value
TOKEN = "Query-T0ken-Secret"  # noqa: S105 - a test value


def http_task(url: str) -> str:
    return (
        "apiVersion: crontask.dev/v1alpha1\n"
        "kind: CronTask\n"
        "metadata: {name: hook}\n"
        "spec:\n"
        '  schedule: "* * * * * *"\n'
        f'  http: {{method: GET, url: "{url}"}}\n'
    )


@pytest.mark.slow
def test_an_http_tasks_url_secrets_are_not_logged(crontask: Callable[..., Crontask]) -> None:
    with hostile_server() as server:
        app = crontask("--log-level", "info")
        url = server.url.replace("http://", f"http://svc:{PASSWORD}@") + f"/hook?token={TOKEN}"
        (app.tasks / "hook.yaml").write_text(http_task(url))
        wait_for("the request", lambda: _asked(server))
        wait_for(
            "a succeeded run",
            lambda: any(r.status is RunStatus.SUCCEEDED for r in app.runs("default/hook")),
        )
        # Lines are written in the order they were logged: httpx's came before this one.
        app.wait_log("run finished")
        app.stop()
    log = app.log()
    assert "task=default/hook" in log
    assert PASSWORD not in log
    assert TOKEN not in log


def _asked(server: HostileServer) -> bool:
    with server.lock:
        return any(TOKEN in path for path in server.requests)
