"""``--listen`` is checked with the other flags: an address without a port, or a port that is
not 0-65535 in ASCII digits, is a usage error (one line, exit status 2) before anything
starts, never a traceback from ``int()`` or ``bind()``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.hostile import crontask


@pytest.mark.parametrize(
    "listen",
    ["127.0.0.1:99999", "127.0.0.1:\u00b2", "127.0.0.1:\u0663", "127.0.0.1", "127.0.0.1:", "[::1]"],
)
def test_a_listen_address_without_a_usable_port_is_a_usage_error(
    tmp_path: Path, listen: str
) -> None:
    (tmp_path / "tasks").mkdir()
    state = tmp_path / "state"
    done = crontask(
        "run", str(tmp_path / "tasks"), "--state-dir", str(state), "--listen", listen, timeout=60
    )
    assert done.code == 2, done.err
    assert "Traceback" not in done.err
    assert done.err.splitlines()[-1].startswith("crontask run: error: argument --listen: ")
    assert not state.exists()  # refused before anything started
