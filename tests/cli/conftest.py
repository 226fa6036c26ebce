from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.hostile import HostileServer, hostile_server


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostileServer]:
    """A misbehaving crontask API (see :mod:`tests.cli.hostile`), asked without a token."""
    monkeypatch.delenv("CRONTASK_TOKEN", raising=False)
    monkeypatch.delenv("CRONTASK_TIMEOUT", raising=False)
    with hostile_server() as server:
        yield server
