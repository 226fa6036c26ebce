"""``repeatInterval`` sends reminders of ``failed`` only: on a route whose events lack
``failed`` it would do nothing, silently. Refused at its place, saying so."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sinks.notify_config import NotificationConfigError, load

FILE = """\
receivers:
  - {name: hook, type: slack, url: "https://hooks.example/services/T0/B0/xyz"}
routes:
  - receiver: hook
    events: EVENTS
    repeatInterval: 4h
"""


def written(folder: Path, events: str) -> Path:
    path = folder / "notify.yaml"
    path.write_text(FILE.replace("EVENTS", events))
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("events", ["[recovered]", "[everyFailure, definitionError]"])
def test_repeat_interval_without_failed_is_refused(tmp_path: Path, events: str) -> None:
    path = written(tmp_path, events)

    with pytest.raises(NotificationConfigError) as caught:
        load(path)

    assert str(caught.value) == (
        f"{path}:6:21: routes[0].repeatInterval: reminders are of failed "
        "only: add failed to events, or remove repeatInterval"
    )


@pytest.mark.parametrize("events", ["[failed]", "[recovered, failed]"])
def test_repeat_interval_with_failed_loads(tmp_path: Path, events: str) -> None:
    assert load(written(tmp_path, events)).config.routes[0].repeat_interval == 4 * 3600
