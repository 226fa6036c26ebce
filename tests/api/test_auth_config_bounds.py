"""An auth file's size in tokens is bounded before each token is read, and its duplicate names
are counted once each: 1 MiB of YAML aliases holds some 340 000 tokens, and the watcher reads
every version of the file (a quadratic check held a revocation back for minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.api.auth import MAX_TOKENS, AuthConfig, AuthConfigError


def _aliases(tmp_path: Path, token: str, count: int) -> Path:
    path = tmp_path / "auth.yaml"
    path.write_text(f"tokens: [&t {token}" + ", *t" * (count - 1) + "]\n")
    return path


def test_too_many_tokens_are_refused_before_any_is_read(tmp_path: Path) -> None:
    # Each token is invalid (its sha256): had they been read one by one, the first one's error
    # would be the answer.
    path = _aliases(tmp_path, "{name: a, sha256: abc, role: viewer}", MAX_TOKENS + 1)
    with pytest.raises(AuthConfigError) as info:
        AuthConfig.load(path)
    assert f"{MAX_TOKENS + 1} tokens: at most {MAX_TOKENS}" in str(info.value)
    assert "sha256" not in str(info.value)


def test_duplicated_names_are_named_ten_at_most(tmp_path: Path) -> None:
    entries = [
        f"  - {{name: n{i:02d}, sha256: '{i * 2 + copy:064x}', role: viewer}}"
        for i in range(12)
        for copy in range(2)
    ]
    path = tmp_path / "auth.yaml"
    path.write_text("tokens:\n" + "\n".join(entries) + "\n")
    with pytest.raises(AuthConfigError) as info:
        AuthConfig.load(path)
    names = ", ".join(f"n{i:02d}" for i in range(10))
    assert f"token names must be unique: {names} and 2 more" in str(info.value)


def test_one_alias_repeated_is_one_duplicated_name(tmp_path: Path) -> None:
    path = _aliases(tmp_path, "{name: a, sha256: '" + "0" * 64 + "', role: viewer}", 1000)
    with pytest.raises(AuthConfigError) as info:
        AuthConfig.load(path)
    assert "token names must be unique: a\n" in str(info.value) + "\n"
