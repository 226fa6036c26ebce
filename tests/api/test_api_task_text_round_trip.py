"""Every string an API task is written with is the string it reads back: the text the API stores
is YAML, and PyYAML with ``allow_unicode`` writes U+0085 (NEL) raw, which a YAML reader takes
for a line break and folds into a space ("c\\x85d" was stored as "c d"). Through the real API
(POST, then GET and the definition the scheduler got from the stored text), and a text stored
by an older version (raw UTF-8) still reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.controller import writes
from reconciler.core.desired import Definition, DefinitionError
from reconciler.sources.api import ApiTaskFiles, read_stored
from tests.api.live_api import LiveApi, files_root
from tests.api.test_problems import assert_problem
from tests.helpers import task_doc

SENT = [
    "c\x85d",  # NEL between two letters
    "\x85",  # NEL alone
    "\x85 lead and trail \x85",
    "".join(chr(c) for c in range(0x80, 0xA0)),  # every C1 control
    "a\u2028b\u2029c",  # line and paragraph separators
    "\ufeffbom",  # a byte order mark
    "\U0001f600",  # a lone character outside the BMP
    "\U0010fffd",
    "café \u00a0 日本 \x7f \t tab",
]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApi]:
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)), allow_empty=True)
    yield instance
    instance.stop()


def sent(name: str) -> dict[str, Any]:
    document = task_doc(name, "ops", command={"args": ["echo", *SENT]})
    document["metadata"]["annotations"] = {"note": "x\x85y"}
    return document


def test_every_string_sent_is_the_string_read_back(live: LiveApi) -> None:
    with live.client() as client:
        created = client.post("/api/v1/tasks", json=sent("nel"))
        assert created.status_code == 201, created.text[:300]
        got = client.get("/api/v1/tasks/ops/nel")
    assert got.status_code == 200
    resource = got.json()["resource"]
    assert resource["spec"]["command"]["args"] == ["echo", *SENT]
    assert resource["metadata"]["annotations"] == {"note": "x\x85y"}
    # What runs is what was sent: the scheduler's definition is read from the stored text.
    assert live.resync().ok
    scheduled = live.scheduler.owned()["ops/nel"]
    assert scheduled.task.spec.command is not None
    assert scheduled.task.spec.command.args == ["echo", *SENT]


def test_a_task_without_such_characters_is_stored_as_before(live: LiveApi, tmp_path: Path) -> None:
    # Accents and emoji stay their UTF-8 bytes (not escapes): the text is what it was.
    document = task_doc("plain", "ops", command={"args": ["echo", "café \U0001f600"]})
    with live.client() as client:
        assert client.post("/api/v1/tasks", json=document).status_code == 201
    [stored] = files_root(tmp_path).rglob("*.yaml")
    assert "café \U0001f600" in stored.read_text(encoding="utf-8")


def test_a_text_stored_by_an_older_version_still_reads(live: LiveApi, tmp_path: Path) -> None:
    # An older version stored every task with ``allow_unicode``: the same text, read as before.
    with live.client() as client:
        assert client.post("/api/v1/tasks", json=task_doc("old", "ops")).status_code == 201
        [stored] = files_root(tmp_path).rglob("*.yaml")
        older = task_doc("old", "ops", command={"args": ["echo", "café \U0001f600 \u2028"]})
        stored.write_text(
            yaml.safe_dump(older, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        assert live.resync().ok
        got = client.get("/api/v1/tasks/ops/old")
    assert got.status_code == 200
    assert got.json()["resource"]["spec"]["command"]["args"] == ["echo", "café \U0001f600 \u2028"]


def test_a_text_that_would_read_back_another_task_is_422_and_not_stored(
    live: LiveApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Should a string change on the way through YAML again, the write is refused, not stored
    # as another task than the one sent.
    real = read_stored

    def changed(key: str, text: str) -> Definition | DefinitionError:
        return real(key, text.replace("c\\Nd", "c d"))

    monkeypatch.setattr(writes, "read_stored", changed)
    document = task_doc("nel", "ops", command={"args": ["echo", "c\x85d"]})
    with live.client() as client:
        refused = client.post("/api/v1/tasks", json=document)
    problem = assert_problem(refused, 422, "invalid-definition")
    assert "would read back as another task" in problem["detail"]
    assert not list(files_root(tmp_path).rglob("*.yaml"))
