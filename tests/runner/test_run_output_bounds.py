"""Output is bounded as it is stored: in bytes of UTF-8 after decoding, where an undecodable
byte or a NUL takes three (U+FFFD), not in bytes read. Real processes for a command's output;
the HTTP body's bound is in ``test_http_response_edges``."""

from __future__ import annotations

import sys

from hypothesis import given
from hypothesis import strategies as st

from reconciler.core.runs import RunStatus
from reconciler.runner.output import bounded_text
from tests.runner.test_command import run

KEPT = 64 * 1024


def emit(data: str) -> list[str]:
    """A command writing the bytes of the Python expression ``data`` to its stdout."""
    return [sys.executable, "-c", f"import sys; sys.stdout.buffer.write({data})"]


def test_binary_output_within_the_read_limit_is_cut_to_it_once_decoded() -> None:
    # 64 KiB read, all of it kept by the pipe reader, but 192 KiB as text: a third fits.
    outcome = run(emit(f"b'\\xff' * {KEPT}"))
    assert outcome.status is RunStatus.SUCCEEDED
    kept = KEPT // 3
    assert outcome.output == f"[... {KEPT - kept} bytes truncated ...]\n" + "\ufffd" * kept


def test_binary_output_beyond_the_read_limit_keeps_a_tail_within_it() -> None:
    outcome = run(emit("b'\\xff' * (1 << 20) + b'\\nend\\n'"))
    kept = (KEPT - 5) // 3  # of the undecodable bytes, besides "\nend\n"
    assert outcome.output == (
        f"[... {(1 << 20) - kept} bytes truncated ...]\n" + "\ufffd" * kept + "\nend\n"
    )


def test_nul_bytes_count_as_what_the_store_writes() -> None:
    outcome = run(emit(repr(b"a\x00b\x00c")), output_limit=6)
    # Stored as "a\ufffdb\ufffdc", 9 bytes: the tail keeps "b\ufffdc" (5).
    assert outcome.output == "[... 2 bytes truncated ...]\nb\ufffdc"


def test_an_invalid_sequence_is_still_one_replacement_character() -> None:
    # "\xe2\x82" is a 3-byte sequence missing its end: one U+FFFD, as before, not two.
    outcome = run(emit(repr(b"\xe2\x82x" * 4)))
    assert outcome.output == "\ufffdx" * 4


def test_head_and_tail_cut_at_a_character_boundary() -> None:
    assert bounded_text("ééé".encode(), 5, "head") == ("éé", 2)
    assert bounded_text("ééé".encode(), 5, "tail") == ("éé", 2)
    assert bounded_text(b"ab\xffcd", 5, "head") == ("ab\ufffd", 2)
    assert bounded_text(b"ab\xffcd", 5, "tail") == ("\ufffdcd", 2)
    assert bounded_text(b"\xff", 0, "tail") == ("", 1)
    assert bounded_text(b"plain", 5, "head") == ("plain", 0)


# Text in any script, NULs and undecodable bytes, mixed.
_OUTPUT = st.lists(st.one_of(st.binary(max_size=4), st.text(max_size=4).map(str.encode))).map(
    b"".join
)


@given(_OUTPUT, st.integers(min_value=0, max_value=200), st.booleans())
def test_bounded_text_fits_and_says_what_it_left_out(data: bytes, limit: int, head: bool) -> None:
    text, left_out = bounded_text(data, limit, "head" if head else "tail")
    assert len(text.encode("utf-8")) <= limit
    assert "\x00" not in text
    rest = data[: len(data) - left_out] if head else data[left_out:]
    assert text == rest.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    if left_out == 0:
        assert len(data.decode("utf-8", errors="replace").encode()) + 2 * data.count(0) <= limit
