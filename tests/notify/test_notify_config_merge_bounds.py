"""What merge keys (``<<``) bring in the --notifications file is bounded as an alias is: each
key a merge brings counts as a value, each time. Counting only the mappings merged, 2 300
merge keys of ``[*big, *big, *big]`` (a mapping of 3 000 keys) in a 110 KiB file held 20
million pairs: 40 s and 1.5 GB before the file was refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sinks.notify_config import NotificationConfigError, load


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notify.yaml"
    path.write_text(text)
    path.chmod(0o600)  # no warning of a file others may read
    return path


def test_keys_brought_by_many_merge_keys_count_toward_the_bound(tmp_path: Path) -> None:
    """Few values as written (500 keys, 80 mappings merged), 30 000 keys brought. (A second
    merge key in one mapping is now refused as a key given twice: here each is in its own.)"""
    big = "".join(f"      k{i}: {i}\n" for i in range(500))
    merges = "    <<:\n" + "      - <<: [*big, *big, *big]\n" * 20
    path = written(
        tmp_path,
        "receivers:\n  - name: a\n    type: generic\n    url: https://hooks.example/a\n"
        f"    extra: &big\n{big}  - name: b\n    type: generic\n{merges}"
        "routes:\n  - {receiver: a, events: [failed]}\n",
    )

    with pytest.raises(NotificationConfigError) as caught:
        load(path)

    assert str(caught.value).startswith(f"{path}:")
    assert str(caught.value).endswith(": the file is too large or too deep")
    assert len(str(caught.value).splitlines()) == 1


def chain(levels: int) -> str:
    """Receiver ``b`` merges m{levels-1}, which merges the one before, down to m0. The links
    are anchored as the values of keys that ``a``'s own keys override: no value is built from
    them but through the chain, so it costs few values."""
    links = "".join(f"      k{i}: &m{i} {{<<: *m{i - 1}}}\n" for i in range(1, levels))
    overridden = "".join(f"    k{i}: 0\n" for i in range(levels))
    return (
        "receivers:\n  - name: a\n    type: generic\n    url: https://hooks.example/a\n"
        f"    <<:\n      k0: &m0 {{type: generic}}\n{links}{overridden}"
        f"  - name: b\n    url: https://hooks.example/b\n    <<: *m{levels - 1}\n"
        "routes:\n  - {receiver: a, events: [failed]}\n"
    )


def test_a_long_chain_of_merges_of_merges_is_refused_not_a_recursion_error(
    tmp_path: Path,
) -> None:
    """crontask validate and crontask run ended in a RecursionError's traceback."""
    path = written(tmp_path, chain(1500))

    with pytest.raises(NotificationConfigError) as caught:
        load(path)

    assert str(caught.value) == f"{path}:3008:5: the file is too large or too deep"  # b's <<
