"""The --notifications file is warned of as a secret others may read only when it holds a
secret: a receiver's ``url`` written in it (a webhook's URL is often its token; Slack's are).
One that names its URLs with ``urlFile`` holds none, and was warned of all the same, at each
start and by each ``crontask validate``: in CI, whose checkout git writes 0644 whatever the
repository's file was, a warning no one could silence. Real files in a folder others may
reach, through ``crontask validate``."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import crontask_cli

TASK = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: a}\n"
    'spec: {schedule: "@hourly", command: {args: ["true"]}}\n'
)
URL_FILE = (
    "receivers:\n  - {name: hook, type: generic, urlFile: hook-url}\n"
    "routes:\n  - {receiver: hook, events: [failed]}\n"
)
READABLE = "warning: a secret file others may read"


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A folder every user may reach (pytest's own are private): in /tmp, open to others."""
    made = Path(tempfile.mkdtemp(prefix="crontask-notify-"))
    made.chmod(0o755)
    yield made
    shutil.rmtree(made)


def validated(folder: Path, text: str) -> list[str]:
    (folder / "a.yaml").write_text(TASK)
    (folder / "hook-url").write_text("https://hooks.example/T0K3N\n")
    (folder / "hook-url").chmod(0o600)
    notify = folder / "notify.yaml"
    notify.write_text(text)
    notify.chmod(0o644)  # as git checks it out
    done = crontask_cli("validate", str(folder / "a.yaml"), "--notifications", str(notify))
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_a_file_that_names_its_urls_by_url_file_is_no_secret(public_dir: Path) -> None:
    assert validated(public_dir, URL_FILE) == ["ok: 1 file, 1 task, 1 notification receiver"]


def test_a_file_that_holds_a_url_others_may_read_is_warned_of(public_dir: Path) -> None:
    text = URL_FILE.replace("urlFile: hook-url", "url: 'https://hooks.example/T0K3N'")

    said = validated(public_dir, text)

    assert said == [
        f"{public_dir / 'notify.yaml'}: {READABLE}: any user of this host can read the secret "
        "(chmod o-r)",
        "ok: 1 file, 1 task, 1 notification receiver, 1 warning",
    ]
