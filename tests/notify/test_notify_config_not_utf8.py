"""A --notifications file that is not UTF-8 (saved as Latin-1) is refused at the first byte
that is not, as a task's file is: read with each such byte replaced, a URL holding one was
taken as another URL (``caf\\xe9`` sent to ``caf%EF%BF%BD``), which failed every delivery."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sinks.notify_config import NotificationConfigError, load
from tests.helpers import crontask_cli

LATIN_1 = (
    b"receivers:\n"
    b"  - {name: hook, type: generic, url: 'https://hooks.example/caf\xe9/T0K3N'}\n"
    b"routes:\n"
    b"  - {receiver: hook, events: [failed]}\n"
)
TASK = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: a}\n"
    'spec: {schedule: "@hourly", command: {args: ["true"]}}\n'
)


def written(folder: Path, data: bytes) -> Path:
    path = folder / "notify.yaml"
    path.write_bytes(data)
    path.chmod(0o600)  # no warning of a file others may read
    return path


def test_a_byte_that_is_not_utf8_is_refused_at_its_place(tmp_path: Path) -> None:
    with pytest.raises(NotificationConfigError) as caught:
        load(written(tmp_path, LATIN_1))

    # Line 2, the 64th byte; the byte itself is not said: it may be of a secret URL.
    assert str(caught.value) == (
        f"{tmp_path / 'notify.yaml'}:2:64: not UTF-8 text: save the file as UTF-8"
    )


def test_validate_says_so_too(tmp_path: Path) -> None:
    (tmp_path / "task.yaml").write_text(TASK)
    written(tmp_path, LATIN_1)

    done = crontask_cli(
        "validate", "--notifications", str(tmp_path / "notify.yaml"), str(tmp_path / "task.yaml")
    )

    assert done.returncode == 1
    assert f"{tmp_path / 'notify.yaml'}:2:64: not UTF-8 text" in done.stdout + done.stderr
    assert "T0K3N" not in done.stdout + done.stderr


def test_a_utf8_file_still_loads(tmp_path: Path) -> None:
    loaded = load(written(tmp_path, LATIN_1.replace(b"\xe9", "\u00e9".encode())))

    assert loaded.config.receivers[0].url == "https://hooks.example/caf\u00e9/T0K3N"


def test_the_column_counts_characters_as_an_editor_does(tmp_path: Path) -> None:
    """An "ó" (two bytes of UTF-8) before the Latin-1 byte on its line: the column an editor
    shows (64), not the byte's offset (65)."""
    data = LATIN_1.replace(b"{name: hook,", "{name: hoók,".encode(), 1)
    with pytest.raises(NotificationConfigError) as caught:
        load(written(tmp_path, data))
    assert str(caught.value).startswith(f"{tmp_path / 'notify.yaml'}:2:64: not UTF-8 text")
