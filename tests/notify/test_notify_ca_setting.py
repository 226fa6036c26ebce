"""A ``SSL_CERT_FILE`` crontask cannot read, with ``--notifications``: the notifier built its
client's TLS context at start, raised, and ``crontask run`` stopped (``component failed;
stopping component=notifications error="[Errno 2] No such file or directory"``), every task with
it. The setting is said once, as for http tasks (``reconciler.trust``); crontask runs on, and a
plain http receiver still gets its messages (an https one cannot be verified)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.notify.receiver import receiving

pytestmark = pytest.mark.e2e
SAID = "https requests fail: the CA certificates cannot be read"


def test_crontask_runs_on_and_says_the_setting(tmp_path: Path) -> None:
    (tmp_path / "notifications.yaml").write_text(
        "receivers:\n"
        "  - {name: hook, type: generic, urlFile: hook-url}\n"
        "routes:\n"
        "  - {receiver: hook, events: [failed]}\n"
    )
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "flaky.yaml").write_text(task("flaky", ["false"]))
    missing = tmp_path / "no-such-bundle.pem"
    with receiving() as receiver:
        (tmp_path / "hook-url").write_text(receiver.url)
        options = ["--notifications", str(tmp_path / "notifications.yaml")]
        app = Crontask(tmp_path, tasks, options, env={"SSL_CERT_FILE": str(missing)}).start()
        try:
            received = receiver.wait_for(1)
            assert [r.json["event"] for r in received] == ["failed"]
            assert app.proc is not None
            assert app.proc.poll() is None
        finally:
            app.stop()
    log = app.log()
    assert "component failed" not in log
    said = [line for line in log.splitlines() if SAID in line]
    assert len(said) == 1, log
    assert f"$SSL_CERT_FILE ({missing}) cannot be used: No such file or directory" in said[0]
