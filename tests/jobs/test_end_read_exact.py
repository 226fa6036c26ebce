"""A log exactly as long as the tail a run's end keeps, in exactly as many lines as its first
ask is for (1 024 lines of 64 B: 64 KiB), is the whole log: it is not marked cut. Its first
answer held every line asked for and ``limit`` bytes, which was taken for a cut (lines may come
before those asked for); only a larger ask tells whether any do. One line more is a real cut,
marked with the bytes cut.

Against the project's Kubernetes emulator, as ``test_end_read_log_lines.py``."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.core.runs import truncation_marker
from tests.jobs.test_end_read_log_lines import LIMIT, asked, lines, read, run_job
from tests.k8s.emulator import Emulator

LINE = 64  # bytes, its newline included: 1 024 of them fill the tail


@pytest.mark.parametrize(
    ("count", "cut"),
    [
        (LIMIT // LINE, 0),  # exactly the tail, in exactly the first ask's lines
        (LIMIT // LINE + 1, LINE),  # one line more: that line is cut, and said to be
    ],
    ids=["exact", "one-line-more"],
)
def test_a_log_exactly_as_long_as_the_tail_is_whole(
    emulator: Emulator, k8s_api_client: Any, count: int, cut: int
) -> None:
    pod = run_job(emulator, "exact", lines(count, f"%0{LINE - 1}d\\n"))
    whole = emulator.pod_log(pod)
    assert len(whole) == count * LINE
    before = len(asked(emulator))

    out = read(k8s_api_client, pod)

    assert out == (f"{truncation_marker(cut)}\n{whole[-LIMIT:]}" if cut else whole)
    assert asked(emulator)[before:] == [1024, 16384]  # the second tells no line came before
