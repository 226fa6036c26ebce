"""The --notifications file: the shape of DESIGN.md §6, every error at file:line:col."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.sinks.notify_config import Event, NotificationConfigError, load

GOOD = """\
receivers:
  - name: ops-hook
    type: generic-hmac
    urlFile: hook-url
    secretFile: hook-secret
  - name: chat
    type: slack
    url: https://hooks.slack.example/services/T0/B0/xyz
routes:
  - receiver: ops-hook
    events: [failed, recovered]
    match: {namespace: ops, name: "backup-*", source: git}
    repeatInterval: 4h
  - receiver: chat
    events: [definitionError, everyFailure]
"""


def write(folder: Path, text: str) -> Path:
    (folder / "hook-url").write_text("http://127.0.0.1:9/hook\n")
    (folder / "hook-secret").write_text("s3cret-s3cret\n")
    path = folder / "notifications.yaml"
    path.write_text(text)
    return path


def test_the_documented_shape_loads(tmp_path: Path) -> None:
    notifications = load(write(tmp_path, GOOD))
    config = notifications.config
    assert [r.name for r in config.receivers] == ["ops-hook", "chat"]
    assert config.routes[0].events == [Event.FAILED, Event.RECOVERED]
    assert config.routes[0].repeat_interval == 4 * 3600
    assert config.routes[0].match.name == "backup-*"
    assert notifications.url_of(config.receivers[0]) == "http://127.0.0.1:9/hook"
    assert notifications.secret_of(config.receivers[0]) == b"s3cret-s3cret"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("    secretFile: hook-secret\n", "    secretFile: hook-secret\n    colour: red\n"),
            "notifications.yaml:6:5: receivers[0].colour: unknown field 'colour'",
        ),
        (
            ("type: slack", "type: teams"),
            "notifications.yaml:7:11: receivers[1].type: Input should be 'generic', ",
        ),
        (
            ("[failed, recovered]", "[failed, recoverd]"),
            "notifications.yaml:11:22: routes[0].events[1]: Input should be 'failed'",
        ),
        (
            ("repeatInterval: 4h", "repeatInterval: soon"),
            "notifications.yaml:13:21: routes[0].repeatInterval: 'soon' is not a duration",
        ),
        (
            ("source: git}", "source: svn}"),
            "notifications.yaml:12:55: routes[0].match.source: Input should be ",
        ),
        (
            ("  - receiver: chat", "  - receiver: chats"),
            "notifications.yaml:14:15: routes[1].receiver: no receiver named 'chats'",
        ),
        (
            ("    url: https://hooks", "    url: ftp://hooks"),
            "notifications.yaml:8:10: receivers[1].url: the URL must start with http://",
        ),
        (
            ("    secretFile: hook-secret\n", ""),
            "receivers[0]: a generic-hmac receiver needs secretFile",
        ),
        (
            ("urlFile: hook-url", "urlFile: missing-file"),
            "missing-file: cannot read: No such file or directory",
        ),
        (
            ("repeatInterval: 4h", "repeatInterval: 3600"),
            "notifications.yaml:13:21: routes[0].repeatInterval: a duration needs a unit",
        ),
        (
            ("repeatInterval: 4h", "repeatInterval: 2026-13-01"),
            "notifications.yaml:13:21: routes[0].repeatInterval: a date that does not exist",
        ),
        (  # a task's namespace is a DNS-1123 label: this one would match no task, ever
            ("namespace: ops,", "namespace: Ops Team,"),
            "notifications.yaml:12:24: routes[0].match.namespace: 'Ops Team' is not a DNS-1123 "
            "label (lower-case letters, digits and '-', starting and ending with a letter or "
            "digit), as every task's namespace is: it would match no task",
        ),
        (  # a task's name is lower case: a capital outside a [set] would match no task
            ('name: "backup-*"', 'name: "Backup-*"'),
            "notifications.yaml:12:35: routes[0].match.name: task names are lower case: "
            "'Backup-*' can match none",
        ),
        (
            ("  - name: chat\n", "  - name: ops-hook\n"),
            "notifications.yaml:6:11: receivers[1].name: receiver names must be unique: "
            "'ops-hook' is also the name of receivers[0]",
        ),
    ],
)
def test_errors_name_the_place(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(NotificationConfigError) as caught:
        load(write(tmp_path, GOOD.replace(old, new)))
    assert expected in str(caught.value)


def test_a_name_glob_with_capitals_in_a_set_only_loads(tmp_path: Path) -> None:
    loaded = load(write(tmp_path, GOOD.replace('name: "backup-*"', 'name: "[!A-Z]ackup-*"')))
    assert loaded.config.routes[0].match.name == "[!A-Z]ackup-*"


def test_urls_and_secrets_stay_out_of_messages(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    (tmp_path / "hook-url").write_text("gopher://secret-token-in-url\n")
    with pytest.raises(NotificationConfigError) as caught:
        load(path)
    assert "secret-token-in-url" not in str(caught.value)


def test_hostile_files_are_bounded(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefg", "bcdefgh", strict=True)
    )
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb)
    with pytest.raises(NotificationConfigError, match="too large or too deep"):
        load(path)
    path.write_text("receivers: !!python/object:os.system {}\n")
    with pytest.raises(NotificationConfigError, match=r"bomb\.yaml:1:"):
        load(path)
    path.write_bytes(b"#" * (300 * 1024))
    with pytest.raises(NotificationConfigError, match="larger than"):
        load(path)
    path.write_text("")
    with pytest.raises(NotificationConfigError, match="empty"):
        load(path)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:99999/hook", "the URL's port must be between 1 and 65535"),
        ("http://127.0.0.1:0/hook", "the URL's port must be between 1 and 65535"),
        ("http://h:abc/hook", "the URL is not valid (its host or port cannot be read)"),
        ("http://[::1/hook", "the URL is not valid (its host or port cannot be read)"),
        ("http://:80/hook", "the URL has no host"),
    ],
)
def test_a_url_httpx_cannot_send_to_is_refused_at_its_place(
    tmp_path: Path, url: str, says: str
) -> None:
    old = "    url: https://hooks.slack.example/services/T0/B0/xyz"
    with pytest.raises(NotificationConfigError) as caught:
        load(write(tmp_path, GOOD.replace(old, f"    url: {url!r}")))
    assert str(caught.value) == f"{tmp_path / 'notifications.yaml'}:8:10: receivers[1].url: {says}"
    path = write(tmp_path, GOOD)
    (tmp_path / "hook-url").write_text(url + "\n")  # and in a urlFile, read at each delivery
    with pytest.raises(NotificationConfigError) as caught:
        load(path)
    assert str(caught.value) == f"{path}:4:14: receivers[0].urlFile: {says}"


HUGE_REPEAT = (
    "receivers:\n  - {name: a, type: generic, url: 'https://h/x'}\n"
    "routes:\n  - {receiver: a, events: [failed], repeatInterval: %s}\n"
)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("receivers: " + "[" * 5000 + "]" * 5000 + "\n", "1:32: the file is too large or too deep"),
        (  # 400 digits: too many for a float (OverflowError)
            HUGE_REPEAT % f'"{"9" * 400}s"',
            f"4:53: routes[0].repeatInterval: '{'9' * 32}...' is not a duration from 1s to 366d "
            "(examples: 30m, 4h, 1d12h)",
        ),
        (  # 5 000 digits: more than Python reads as an int (ValueError inside PyYAML)
            HUGE_REPEAT % ("9" * 5000),
            "4:53: routes[0].repeatInterval: a number too long to read",
        ),
    ],
    ids=["deep", "long-duration", "long-number"],
)
def test_a_hostile_file_is_a_config_error_not_a_traceback(
    tmp_path: Path, text: str, says: str
) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    (tmp_path / "tasks").mkdir()
    argv = ["run", "tasks", "--notifications", str(path), "--listen", "off"]
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "crontask: --notifications:",
        f"{path}:{says}",
    ]


def test_a_receiver_repeated_by_an_alias_is_reported_where_the_alias_stands(
    tmp_path: Path,
) -> None:
    """PyYAML composes ``*r`` into the anchored node itself: its place is the alias's."""
    path = tmp_path / "n.yaml"
    path.write_text(
        "receivers:\n"
        "  - &r {name: a, type: generic, url: 'https://h/x'}\n"
        "  - *r\n"
        "routes:\n"
        "  - {receiver: a, events: [failed]}\n"
    )
    with pytest.raises(NotificationConfigError) as caught:
        load(path)
    assert str(caught.value).splitlines() == [
        f"{path}:3:5: receivers[1].name: receiver names must be unique: 'a' is also the name "
        "of receivers[0]",
    ]
    # An error inside what an alias repeats is at the alias too, not at the anchor.
    path.write_text(
        path.read_text().replace("  - *r\n", "").replace("[failed]}", "[failed], match: *r}")
    )
    with pytest.raises(NotificationConfigError) as caught:
        load(path)
    assert str(caught.value).splitlines() == [
        f"{path}:4:44: routes[0].match.type: unknown field 'type'",
        f"{path}:4:44: routes[0].match.url: unknown field 'url'",
    ]


@pytest.mark.parametrize("scheme", ["HTTPS", "Http"])
def test_a_url_scheme_is_case_insensitive(tmp_path: Path, scheme: str) -> None:
    url = f"{scheme}://hooks.example/x"
    path = write(tmp_path, GOOD.replace("https://hooks.slack.example/services/T0/B0/xyz", url))
    assert load(path).config.receivers[1].url == url
    (tmp_path / "hook-url").write_text(url + "\n")  # and in a urlFile
    notifications = load(path)
    assert notifications.url_of(notifications.config.receivers[0]) == url


def test_a_notifications_file_that_is_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    """A FIFO would hold ``crontask run`` at start-up until a writer came (a subprocess: in
    this one, the read would block the test for good). Refused, with the file's name."""
    path = tmp_path / "notifications.yaml"
    os.mkfifo(path)
    (tmp_path / "tasks").mkdir()
    argv = ["run", "tasks", "--notifications", str(path), "--listen", "off"]
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "crontask: --notifications:",
        f"{path}: not a regular file: not read",
    ]


def test_a_notifications_file_that_is_a_directory_or_too_large_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotificationConfigError) as caught:
        load(tmp_path)
    assert str(caught.value) == f"{tmp_path}: not a regular file: not read"
    path = write(tmp_path, GOOD + "#" * (256 * 1024))
    with pytest.raises(NotificationConfigError) as caught:
        load(path)
    assert str(caught.value) == f"{path}: larger than 256 KiB: not read"
