"""Under the real ``crontask run`` over a watched folder: the tasks whose removal the empty-set
guard held (the last task file deleted, a broken one left) go as soon as a task file comes
back, with the pass of that file's event, not at the next resync (an hour away here)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


def test_held_removals_go_with_the_event_that_ends_the_hold(
    crontask: Callable[..., Crontask],
) -> None:
    app = crontask("--resync", "1h")

    def scheduled() -> set[str]:
        items = httpx.get(f"{app.server}/api/v1/tasks").json()["items"]
        return {t["key"] for t in items}

    # Both in one file: one event deletes both, so the pass that reads it finds nothing left.
    both = task("a", ["true"], schedule="@daily") + "---\n" + task("b", ["true"], "@daily")
    (app.tasks / "ab.yaml").write_text(both)
    wait_for("a and b", lambda: scheduled() == {"default/a", "default/b"})
    # A file is left (a broken one): the folder is not the "no task file here" of an unmounted
    # volume, which its source holds itself; the sources yield no task: the planner holds.
    (app.tasks / "broken.yaml").write_text("kind: [\n")
    app.wait_log("definition error")
    (app.tasks / "ab.yaml").unlink()
    app.wait_log("every source is empty; keeping the running tasks")
    assert scheduled() == {"default/a", "default/b"}
    (app.tasks / "c.yaml").write_text(task("c", ["true"], schedule="@daily"))
    wait_for("only c", lambda: scheduled() == {"default/c"})
    for key in ("default/a", "default/b"):
        assert f'msg="task removed" task={key}' in app.log()
