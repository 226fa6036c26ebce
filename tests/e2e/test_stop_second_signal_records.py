"""A second SIGTERM (Ctrl-C twice) ends ``crontask run`` promptly while it waits, at its stop,
for a store that stopped answering to take the run records kept for later: the records' wait
(``--shutdown-grace``, here far longer than the test) is cut as the runs' grace is, and the
records still kept are lost, said, with exit status 1. The real program, its PostgreSQL store
behind a proxy that swallows every byte from a point on
(``test_stop_store_black_hole.BlackHoleProxy``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.test_stop_store_black_hole import PG_URL, TASK, BlackHoleProxy
from tests.helpers import wait_for

pytestmark = [
    pytest.mark.skipif(not PG_URL, reason="needs CRONTASK_TEST_POSTGRES_URL"),
    pytest.mark.slow,
]
PATIENCE = 60.0
GRACE = 600  # seconds: the runs' grace, and the records' wait the second signal cuts
# After the second signal: the hurried records' 1 s, the heartbeat's 2 s, the threads' 2 s and
# 2 s more at exit (see test_stop_store_black_hole), with room for a loaded machine.
PROMPT = 30.0
WAITING = "waiting for the run store to take the records kept for later"


def test_a_second_sigterm_cuts_the_wait_for_records_the_store_does_not_take(
    tmp_path: Path,
) -> None:
    url = urlsplit(PG_URL)
    proxy = BlackHoleProxy((url.hostname or "127.0.0.1", url.port or 5432))
    db = url._replace(netloc=f"{url.username}:{url.password}@127.0.0.1:{proxy.port}").geturl()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "tick.yaml").write_text(TASK)
    log = tmp_path / "log"
    argv = [sys.executable, "-m", "reconciler", "run", "tasks", "--listen", "off", "--db", db]
    argv += ["--state-dir", "state", "--shutdown-grace", f"{GRACE}s", "--kill-grace", "1s"]
    with log.open("w") as out:
        env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for("a run finished", lambda: "run finished" in log.read_text(), PATIENCE)
        proxy.swallow()
        wait_for("records kept", lambda: "records kept for later" in log.read_text(), PATIENCE)
        proc.send_signal(signal.SIGTERM)
        wait_for("the records' wait", lambda: WAITING in log.read_text(), PATIENCE)
        proc.send_signal(signal.SIGTERM)  # Ctrl-C again
        began = time.monotonic()
        try:
            status = proc.wait(PROMPT)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # its threads' stacks in the log (faulthandler)
            proc.wait(PATIENCE)
            pytest.fail(
                f"crontask still running {PROMPT}s after a second SIGTERM:\n{log.read_text()}"
            )
        took = time.monotonic() - began
    finally:
        proc.kill()
        proc.wait()
        proxy.close()
    text = log.read_text()
    assert status == 1, text
    assert took < PROMPT
    assert "asked again to stop" in text, text
    assert "run records lost at shutdown: the store stayed unavailable" in text, text
    assert "crontask stopped" in text, text
    assert "Traceback" not in text, text
    assert "Task was destroyed but it is pending" not in text, text
    assert "exception was never retrieved" not in text, text
