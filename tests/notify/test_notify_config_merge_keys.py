"""The --notifications file reads YAML merge keys (``<<: *base``), as a task's file does:
a receiver or a route written once and varied was refused as ``unknown field '<<'`` (and the
fields it brings as missing). What the mapping writes itself wins over what it merges; of a
list of merged mappings, the first that has a key. An error in what a merge brings is said
where its alias stands, as for any alias."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sinks.notify_config import NotificationConfigError, load

SHARED = """\
receivers:
  - &hook {name: ops, type: generic, url: "https://hooks.example/ops"}
  - <<: *hook
    name: dev
    url: https://hooks.example/dev
routes:
  - &route {receiver: ops, events: [failed, recovered], match: {namespace: ops}}
  - <<: [{receiver: dev}, *route]
    match: {namespace: dev}
"""


def loaded(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notify.yaml"
    path.write_text(text)
    path.chmod(0o600)  # no warning of a file others may read
    return path


def test_merged_fields_are_read_and_the_mapping_s_own_win(tmp_path: Path) -> None:
    config = load(loaded(tmp_path, SHARED)).config

    dev = config.receivers[1]
    assert (dev.name, dev.type, dev.url) == ("dev", "generic", "https://hooks.example/dev")
    route = config.routes[1]
    assert route.receiver == "dev"  # the first merged mapping that has it
    assert [e.value for e in route.events] == ["failed", "recovered"]
    assert route.match.namespace == "dev"


def test_an_error_in_what_a_merge_brings_is_said_at_its_alias(tmp_path: Path) -> None:
    text = SHARED.replace("events: [failed, recovered]", "events: [failed, recoverd]")
    path = loaded(tmp_path, text)

    with pytest.raises(NotificationConfigError) as caught:
        load(path)

    expected = "Input should be 'failed', 'recovered', 'definitionError' or 'everyFailure'"
    assert str(caught.value).splitlines() == [
        f"{path}:7:45: routes[0].events[1]: {expected}",
        f"{path}:8:27: routes[1].events[1]: {expected}",
    ]


@pytest.mark.parametrize(
    ("merge", "says"),
    [
        ("<<: 3", "3:9: receivers[1]: a merge key (<<) takes a mapping or a list of mappings"),
        (
            "<<: [*hook, 3]",
            "3:17: receivers[1]: a merge key (<<) takes a mapping or a list of mappings",
        ),
    ],
)
def test_a_merge_of_no_mapping_is_said_at_its_place(tmp_path: Path, merge: str, says: str) -> None:
    path = loaded(tmp_path, SHARED.replace("<<: *hook", merge))

    with pytest.raises(NotificationConfigError) as caught:
        load(path)

    assert str(caught.value) == f"{path}:{says}"


def test_a_key_written_twice_beside_a_merge_is_still_refused(tmp_path: Path) -> None:
    path = loaded(tmp_path, SHARED.replace("    name: dev\n", "    name: dev\n    name: qa\n"))

    with pytest.raises(NotificationConfigError) as caught:
        load(path)

    assert str(caught.value) == f"{path}:5:5: 'name' is given twice"


def test_a_mapping_that_merges_itself_is_refused_not_a_recursion(tmp_path: Path) -> None:
    path = loaded(
        tmp_path,
        "receivers:\n  - &r {name: a, type: generic, url: 'https://h/x', <<: *r}\n"
        "routes:\n  - {receiver: a, events: [failed]}\n",
    )

    with pytest.raises(NotificationConfigError) as caught:
        load(path)

    assert "merges itself" in str(caught.value)


def test_mappings_that_merge_each_other_are_refused_not_a_recursion(tmp_path: Path) -> None:
    path = loaded(
        tmp_path,
        "receivers:\n  - &r {<<: {<<: *r}, name: a, type: generic, url: 'https://h/x'}\n"
        "routes:\n  - {receiver: a, events: [failed]}\n",
    )

    with pytest.raises(NotificationConfigError) as caught:
        load(path)

    assert "merges itself" in str(caught.value)


def test_merges_of_merges_of_an_empty_mapping_are_bounded(tmp_path: Path) -> None:
    """Each level merges the one before 30 times: 30**8 merges if each were followed."""
    lines = ["x0: &m0 {}"]
    for level in range(1, 9):
        merged = ", ".join([f"*m{level - 1}"] * 30)
        lines.append(f"x{level}: &m{level} {{<<: [{merged}]}}")
    path = loaded(tmp_path, "\n".join(lines) + "\n")

    with pytest.raises(NotificationConfigError) as caught:
        load(path)

    assert str(caught.value).endswith(": the file is too large or too deep")


def test_a_merged_mapping_s_own_keys_win_over_what_it_merges(tmp_path: Path) -> None:
    """As PyYAML's constructor reads a task's file: each mapping merged is flattened first."""
    path = loaded(
        tmp_path,
        "receivers:\n"
        "  - &base {name: a, type: generic, url: 'https://hooks.example/base'}\n"
        "  - &mid {<<: *base, name: b, url: 'https://hooks.example/mid'}\n"
        "  - {<<: *mid, name: c}\n"
        "routes:\n  - {receiver: a, events: [failed]}\n"
        "  - {receiver: b, events: [failed]}\n  - {receiver: c, events: [failed]}\n",
    )

    assert load(path).config.receivers[2].url == "https://hooks.example/mid"
