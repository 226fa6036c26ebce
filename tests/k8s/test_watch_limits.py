"""The informer's watch has limits of its own: a stream that never ends (a proxy that ignores
``timeoutSeconds`` and passes bookmarks on) does not hold off the periodic re-list, and a line
that never ends is a failed watch, not memory without bound."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.sources.kubernetes import list_function
from reconciler.sources.kubernetes_watch import Informer
from reconciler.sources.kubernetes_wire import LineTooLong
from reconciler.sources.kubernetes_wire import lines as watch_lines
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator


@pytest.mark.usefixtures("crontask_crd")
@pytest.mark.parametrize("emulator", [{"bookmark_interval": 0.1}], indirect=True)
def test_a_watch_that_never_ends_is_left_and_the_collection_re_listed(
    emulator: Emulator, k8s_api_client: Any
) -> None:
    emulator.watch_timeouts = False
    informer = Informer(
        list_function(k8s_api_client, "default"),
        on_change=lambda keys: None,
        resync_seconds=1.0,
        watch_seconds=1.0,
        watch_grace=0.5,
    )
    informer.start(5.0)
    try:
        wait_for("bookmarks", lambda: informer.bookmarks >= 3)
        wait_for("two re-lists", lambda: informer.lists >= 3, timeout=15)
    finally:
        informer.stop()


class Stream:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    def stream(self, amt: Any = None, decode_content: bool = False) -> Any:
        yield from self.chunks


def test_watch_lines_are_split_and_a_line_without_end_is_an_error() -> None:
    lines = watch_lines(Stream(b'{"a":', b' 1}\n\n{"b": 2}\n{"c"', b": 3}"), limit=16)
    assert list(lines) == ['{"a": 1}', '{"b": 2}', '{"c": 3}']
    endless = watch_lines(Stream(b"{}\n", *[b"x" * 8] * 1000), limit=64)
    assert next(endless) == "{}"
    with pytest.raises(LineTooLong):
        next(endless)
