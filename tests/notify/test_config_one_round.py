"""A --notifications file's problems are reported in one round: the errors of its fields, and
with them what the parts that are valid refer to (a route to a receiver that does not exist, a
urlFile that cannot be read). The reference problems used to come only once every field was
fixed, and a file's problem named its field twice ("urlFile: urlFile: cannot read ...")."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sinks.notify_config import NotificationConfigError, load

BROKEN = """\
receivers:
  - {name: a, type: generic, url: "https://hooks.example/x", colour: red}
  - {name: c, type: generic, urlFile: nofile}
  - {name: s, type: generic-hmac, url: "https://hooks.example/s", secretFile: empty}
routes:
  - {receiver: zz, events: [failed]}
  - {receiver: a, events: [failed, sometimes]}
  - {receiver: a, events: [failed]}
"""


def test_field_and_reference_problems_come_together(tmp_path: Path) -> None:
    path = tmp_path / "notifications.yaml"
    path.write_text(BROKEN)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(NotificationConfigError) as caught:
        load(path)
    lines = str(caught.value).splitlines()
    # The fields' problems, then what the valid parts refer to.
    assert [line.split(": ", 2)[:2] for line in lines] == [
        [f"{path}:2:62", "receivers[0].colour"],
        [f"{path}:7:36", "routes[1].events[1]"],
        [f"{path}:6:16", "routes[0].receiver"],
        [f"{path}:3:39", "receivers[1].urlFile"],
        [f"{path}:4:79", "receivers[2].secretFile"],
    ]
    # Receiver "a" has a field error, but it exists: no route to it is said to lead nowhere.
    assert lines[2].endswith("no receiver named 'zz' (receivers: a, c, s)")
    missing, empty = tmp_path / "nofile", tmp_path / "empty"
    assert lines[3].endswith(f"urlFile: {missing}: cannot read: No such file or directory")
    assert lines[4].endswith(f"secretFile: {empty}: the file is empty")


def test_a_file_problem_names_its_field_once(tmp_path: Path) -> None:
    path = tmp_path / "notifications.yaml"
    path.write_text(
        "receivers:\n  - {name: c, type: generic, urlFile: nofile}\n"
        "routes:\n  - {receiver: c, events: [failed]}\n"
    )
    with pytest.raises(NotificationConfigError) as caught:
        load(path)
    assert str(caught.value) == (
        f"{path}:2:39: receivers[0].urlFile: {tmp_path / 'nofile'}: cannot read: "
        "No such file or directory"
    )


def test_a_route_to_no_receiver_names_a_few_of_them(tmp_path: Path) -> None:
    """The receivers of a file that does not validate may be thousands, or long: each route
    to none named them all (a 240 KB file made a 39 MB message)."""
    receivers = "".join(
        f"  - {{name: r{i:04d}{'x' * 200}, type: generic, url: 'https://h.example/'}}\n"
        for i in range(400)
    )
    routes = "".join("  - {receiver: zz, events: [failed]}\n" for _ in range(20))
    path = tmp_path / "notifications.yaml"
    path.write_text(f"receivers:\n{receivers}routes:\n{routes}")
    with pytest.raises(NotificationConfigError) as caught:
        load(path)
    told = str(caught.value)
    nowhere = [line for line in told.splitlines() if "no receiver named 'zz'" in line]
    assert len(nowhere) == 20
    assert all("... and 390 more" in line for line in nowhere)
    assert all(len(line) < 1500 for line in nowhere)
