"""A control character in the --notifications file (a NUL, a bell; a file saved as UTF-16
without a byte order mark is one NUL a character) is said at its place with what it is, as
in a task's file: PyYAML's reader refuses it before any mark exists, and the file said only
``1:1: not valid YAML`` wherever it stood."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sinks.notify_config import NotificationConfigError, load

TEXT = (
    "receivers:\n  - name: a\n    type: generic\n    url: https://hooks.example/a\n"
    "routes:\n  - {receiver: a, events: [failed]}\n"
)


def said(tmp_path: Path, data: bytes) -> tuple[Path, str]:
    path = tmp_path / "notify.yaml"
    path.write_bytes(data)
    path.chmod(0o600)  # no warning of a file others may read
    with pytest.raises(NotificationConfigError) as caught:
        load(path)
    return path, str(caught.value)


def test_a_control_character_is_said_at_its_place(tmp_path: Path) -> None:
    path, message = said(tmp_path, TEXT.replace("type: generic", "type: gen\aeric").encode())

    assert message == (
        f"{path}:3:14: unacceptable character #x0007: special characters are not allowed"
    )


def test_utf16_without_a_byte_order_mark_is_said_at_its_first_nul(tmp_path: Path) -> None:
    path, message = said(tmp_path, TEXT.encode("utf-16-le"))

    assert message == (
        f"{path}:1:2: unacceptable character #x0000: special characters are not allowed"
    )
