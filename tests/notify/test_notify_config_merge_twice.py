"""A key given twice in the --notifications file is an error wherever it is written, as in a
task's file: the merge key (``<<``) too, and a key of a mapping written only where it is
merged. Both were read, the first winning unsaid (PyYAML's constructor lets the last win), so
a receiver could send to another URL than the one its reader took for the one in force."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sinks.notify_config import NotificationConfigError, load


def refused(tmp_path: Path, receiver: str) -> tuple[Path, str]:
    path = tmp_path / "notify.yaml"
    path.write_text(
        f"receivers:\n  - name: a\n    type: generic\n{receiver}"
        "routes:\n  - {receiver: a, events: [failed]}\n"
    )
    path.chmod(0o600)  # no warning of a file others may read
    with pytest.raises(NotificationConfigError) as caught:
        load(path)
    return path, str(caught.value)


def test_a_second_merge_key_in_a_mapping_is_a_key_given_twice(tmp_path: Path) -> None:
    path, said = refused(
        tmp_path,
        "    <<: {url: 'https://one.example/'}\n    <<: {url: 'https://two.example/'}\n",
    )

    assert said == f"{path}:5:5: '<<' is given twice"


def test_a_key_twice_in_a_mapping_written_where_it_is_merged_is_refused(tmp_path: Path) -> None:
    path, said = refused(
        tmp_path, "    <<: {url: 'https://one.example/', url: 'https://two.example/'}\n"
    )

    assert said == f"{path}:4:39: 'url' is given twice"
