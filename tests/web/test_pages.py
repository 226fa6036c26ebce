"""The status page over a FakeRuntime: what each page shows, the filters, the bounds."""

from __future__ import annotations

import re
from datetime import timedelta
from html import escape
from pathlib import Path

from reconciler.core.runs import RunStatus
from reconciler.web import pages
from reconciler.web.views import readable_output
from tests.api.conftest import TestClient
from tests.api.fakes import T0, FakeRuntime, record

ROW = re.compile(r'<tr data-task="([^"]+)">')


def keys(html: str) -> list[str]:
    return ROW.findall(html)


def test_the_list_shows_every_task_with_its_badges_strip_and_schedule(page: TestClient) -> None:
    response = page.get("/")
    assert response.status_code == 200
    html = response.text
    assert keys(html) == [
        "default/hello",
        "default/paused",
        "ops/backup",
        "ops/broken",
        "ops/flaky",
    ]
    row = html.split('data-task="ops/flaky"')[1].split("</tr>")[0]
    assert 'class="badge failing"' in row
    assert row.count('class="cell ') == 2  # its two runs, oldest first
    assert row.index("cell succeeded") < row.index("cell failed")
    hello = html.split('data-task="default/hello"')[1].split("</tr>")[0]
    assert 'class="badge ok"' in hello
    assert "every 5 minutes" in hello
    broken = html.split('data-task="ops/broken"')[1].split("</tr>")[0]
    assert 'class="badge error"' in broken
    assert 'class="badge suspended"' in html.split('data-task="default/paused"')[1]
    backup = html.split('data-task="ops/backup"')[1].split("</tr>")[0]
    assert "Europe/Berlin" in backup
    assert "at 02:00 every day" in backup
    assert "@abc123" in backup  # the git revision of its source


def test_filters_narrow_the_list(page: TestClient) -> None:
    assert keys(page.get("/?namespace=ops").text) == ["ops/backup", "ops/broken", "ops/flaky"]
    assert keys(page.get("/?state=failing").text) == ["ops/flaky"]
    assert keys(page.get("/?state=error").text) == ["ops/broken"]
    assert keys(page.get("/?state=suspended").text) == ["default/paused"]
    assert keys(page.get("/?source=git").text) == ["ops/backup"]
    assert keys(page.get("/?q=HELL").text) == ["default/hello"]
    assert keys(page.get("/?q=tasks/fl").text) == ["ops/flaky"]  # text matches the file too
    assert "No task matches" in page.get("/?q=nothing-like-it").text
    # Empty values, as a plain form sends them, mean "any".
    assert len(keys(page.get("/?namespace=&source=&state=&q=").text)) == 5


def test_bad_filters_are_refused_at_the_edge(page: TestClient) -> None:
    assert page.get("/?state=bogus").status_code == 422
    assert page.get("/?namespace=..%2F..").status_code == 422
    assert page.get("/?q=" + "x" * 101).status_code == 422
    assert page.get("/?after=not-a-key").status_code == 422


def test_the_list_pages_by_key(runtime: FakeRuntime, page: TestClient) -> None:
    from tests.api.fakes import view

    runtime.views = {f"default/t{i:03d}": view(f"t{i:03d}") for i in range(120)}
    first = page.get("/").text
    assert len(keys(first)) == 50
    link = re.search(r'href="\?([^"]*after=[^"]*)">next page', first)
    assert link is not None
    second = page.get("/?" + link.group(1).replace("&amp;", "&")).text
    assert keys(second)[0] == "default/t050"


def test_a_task_page_has_definition_slots_history_and_timeline(page: TestClient) -> None:
    html = page.get("/tasks/ops/flaky").text
    assert "<h1>" in html
    assert "flaky" in html
    assert "schedule: &#39;* * * * *&#39;" in html or "schedule: '* * * * *'" in html
    assert html.count("<li><time") == 2  # the fake's next runs
    assert html.count('<tr data-status="') == 2
    assert 'class="run failed"' in html
    assert 'class="run succeeded"' in html
    assert "Run now" in html  # open on loopback: the anonymous caller is an admin
    failed_only = page.get("/tasks/ops/flaky?status=failed").text
    assert failed_only.count('<tr data-status="failed">') == 1
    assert '<tr data-status="succeeded">' not in failed_only
    assert page.get("/tasks/ops/flaky?status=nope").status_code == 422
    assert page.get("/tasks/ops/nothing").status_code == 404


def test_the_run_strip_heading_counts_its_runs(runtime: FakeRuntime, page: TestClient) -> None:
    """'Last 2 runs', 'Last 1 run' (not '1 runs'), and no 'Last 0 runs' for a task without."""
    assert "<dt>Last 2 runs</dt>" in page.get("/tasks/ops/flaky").text
    never = page.get("/tasks/default/paused").text
    assert "Last 0 runs" not in never
    assert "<dt>Runs</dt>" in never
    runtime.store.claim(record("ops/backup", T0, RunStatus.SUCCEEDED))
    assert "<dt>Last 1 run</dt>" in page.get("/tasks/ops/backup").text


def test_run_now_starts_a_manual_run(runtime: FakeRuntime, page: TestClient) -> None:
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.get("/tasks/ops/flaky").text)
    assert token is not None
    response = page.post(
        "/tasks/ops/flaky/run", data={"csrf": token.group(1)}, follow_redirects=False
    )
    assert response.status_code == 303
    run_id = response.headers["location"].removeprefix("/runs/")
    record_ = runtime.store.get(run_id)
    assert record_ is not None
    assert record_.trigger.value == "manual"
    # Without the form's token, or from another site, nothing runs.
    before = len(runtime.store.running())
    assert page.post("/tasks/ops/flaky/run", data={}).status_code == 403
    cross = page.post(
        "/tasks/ops/flaky/run",
        data={"csrf": token.group(1)},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403
    assert len(runtime.store.running()) == before


def test_the_run_page_shows_every_attempt_escaped(runtime: FakeRuntime, page: TestClient) -> None:
    at = T0 + timedelta(hours=1)
    runtime.store.claim(record("ops/flaky", at, RunStatus.FAILED, output="<script>x()</script>"))
    runtime.store.claim(
        record("ops/flaky", at, RunStatus.SUCCEEDED, attempt=2, output="\x1b[31mred\x1b[0m ok\x07")
    )
    run_id = runtime.store.attempts(record("ops/flaky", at).id)[0].id
    html = page.get(f"/runs/{run_id}").text
    assert html.index("Attempt 2") < html.index("Attempt 1")
    assert "<script>x()</script>" not in html
    # Only the newest attempt's output is on the page; attempt 1's is a link away.
    assert "script" not in html.split('<section class="earlier">')[1]
    assert f'href="/runs/{run_id}/output?attempt=1"' in html
    assert "red ok\ufffd" in html  # colour codes dropped, the bell made visible
    plain = page.get(f"/runs/{run_id}/output?attempt=1")
    assert plain.text == "<script>x()</script>"
    assert plain.headers["content-type"].startswith("text/plain")
    assert page.get("/runs/default.nope.20261127T010000Z").status_code == 404
    assert page.get("/runs/..%2F..%2Fetc").status_code in (404, 422)


def test_output_at_the_64_kib_limit_is_one_preformatted_block(
    runtime: FakeRuntime, page: TestClient
) -> None:
    output = "".join(f"line {i} <&>\n" for i in range(6000))[: 64 * 1024]
    at = T0 + timedelta(hours=2)
    runtime.store.claim(record("ops/flaky", at, output=output))
    html = page.get(f"/runs/{record('ops/flaky', at).id}").text
    assert html.count('<pre class="output">') == 1  # one element, however many lines
    shown = html.split('<pre class="output">')[1].split("</pre>")[0]
    assert shown == escape(readable_output(output), quote=False)


def test_the_sources_page_lists_definition_errors(runtime: FakeRuntime, page: TestClient) -> None:
    from reconciler.controller.view import SourceStatus

    runtime.source_list = [
        SourceStatus(
            "git",
            "https://git.example/ops.git#main",
            tasks=3,
            errors=2,
            revision="0123456789abcdef",
            problems=("tasks/a.yaml:3:5: spec.schedule: bad",),
        )
    ]
    html = page.get("/sources").text
    assert "tasks/a.yaml:3:5: spec.schedule: bad" in html
    assert "0123456789abcdef" in html
    assert "and 1 more" in html
    assert "2</span> definition errors" in page.get("/").text


def test_pages_name_no_other_host_and_send_a_strict_policy(page: TestClient) -> None:
    for path in ("/", "/tasks/ops/flaky", "/sources", "/runs/" + record("ops/flaky").id):
        response = page.get(path)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "script-src 'self'" in policy
        assert "unsafe" not in policy
        for ref in re.findall(r'(?:src|href|action)="([^"]*)"', response.text):
            assert not re.match(r"^[a-z]+:|^//", ref), (path, ref)
    folder = Path(pages.__file__).parent
    for asset in [*folder.glob("templates/*.html"), *folder.glob("static/*")]:
        text = asset.read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), asset


def test_assets_are_served_from_the_package(page: TestClient) -> None:
    for name, media in pages.ASSETS.items():
        response = page.get(f"/static/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media)
    assert page.get("/static/../pages.py").status_code == 404
    assert page.get("/static/nope.js").status_code == 404


def test_the_failing_filter_uses_the_last_run_the_runtime_holds(
    runtime: FakeRuntime, page: TestClient
) -> None:
    from tests.api.fakes import view

    # Its last run is in the runtime's memory only (the store has none of its runs).
    last = record("default/fresh", T0, RunStatus.TIMED_OUT)
    runtime.views["default/fresh"] = view("fresh", last_run=last)
    html = page.get("/?state=failing").text
    assert keys(html) == ["default/fresh", "ops/flaky"]
    assert 'class="badge failing"' in html.split('data-task="default/fresh"')[1].split("</tr>")[0]


def test_a_run_interrupted_by_crontasks_shutdown_does_not_make_a_task_failing(
    runtime: FakeRuntime, page: TestClient
) -> None:
    import dataclasses

    from tests.api.fakes import view

    # A deploy interrupted its last run: the task is as healthy as before the deploy.
    last = dataclasses.replace(
        record("default/deployed", T0, RunStatus.INTERRUPTED), reason="Shutdown"
    )
    runtime.views["default/deployed"] = view("deployed", last_run=last)
    assert "default/deployed" not in keys(page.get("/?state=failing").text)
    row = page.get("/").text.split('data-task="default/deployed"')[1].split("</tr>")[0]
    assert 'class="badge failing"' not in row
    # Interrupted because its process died: that is the task's failure.
    runtime.views["default/deployed"] = view(
        "deployed", last_run=dataclasses.replace(last, reason="ProcessDied")
    )
    assert "default/deployed" in keys(page.get("/?state=failing").text)
