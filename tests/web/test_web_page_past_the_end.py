"""A page of the task list past its last task (a link kept from when there were more tasks,
or a page whose tasks were taken out of their files while it refreshed) said "No tasks yet:
add a CronTask to a folder crontask reads", with tasks declared. It says there is no task
after the one it continues from, and links to the first page."""

from __future__ import annotations

from tests.api.conftest import TestClient


def test_a_page_past_the_last_task_does_not_say_there_are_none(page: TestClient) -> None:
    text = page.get("/", params={"after": "zz/zz"}, headers={"Accept": "text/html"}).text
    assert "No tasks yet" not in text
    assert "No task after zz/zz" in text
    assert "« first page" in text


def test_an_empty_list_still_says_how_to_add_one(page: TestClient) -> None:
    text = page.get("/", params={"q": "none-such"}).text
    assert "No task matches these filters." in text
