""":func:`~reconciler.cli.terminal.printable` escapes every character of the Unicode categories
that are no text: controls (Cc), format characters (Cf: bidirectional marks, zero-width
characters, tags), surrogates (Cs) and the line and paragraph separators (Zl, Zp), but the zero-
width joiner and non-joiner and the soft hyphen, which ordinary text holds. A hand-made list let
lone surrogates through, which a UTF-8 terminal got as the bytes of U+202E or of a C1 CSI (or a
strict locale as a traceback), and the bidirectional marks and invisible characters too. Text -
letters of any script, emoji - is left as it is."""

from __future__ import annotations

import unicodedata

import pytest

from reconciler.cli.terminal import printable
from tests.cli.hostile import Handler, HostileServer, crontask

ESCAPED = {"Cc", "Cf", "Cs", "Zl", "Zp"}
TEXT = {"\u200c", "\u200d", "\xad"}  # joiners (Persian, emoji sequences), the soft hyphen


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[2J\x07\x7f\x9b", "\\x1b[2J\\x07\\x7f\\x9b"),  # as before
        ("\u202e\u2028\u2029\u2066", "\\u202e\\u2028\\u2029\\u2066"),  # as before
        ("\udce2\udc80\udcae", "\\udce2\\udc80\\udcae"),  # lone surrogates
        ("a\u200f\u200e\u061cb", "a\\u200f\\u200e\\u061cb"),  # bidi marks
        (
            "\u200b\u2060\u2064\ufeff",
            "\\u200b\\u2060\\u2064\\ufeff",
        ),
        ("\U000e0041\U000e007f", "\\U000e0041\\U000e007f"),  # tags
    ],
    ids=["controls", "bidi", "surrogates", "marks", "invisible", "tags"],
)
def test_escaped(text: str, shown: str) -> None:
    assert printable(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "plain ASCII, with spaces",
        "Grüße, café, naïve",
        "日本語のテキスト",
        "Ελληνικά",
        "😀👍🏽🇫🇷",
        "no\xa0break",
        "\u3000ideographic space",
        "a \U0001fae8 newer emoji",
        "العربية",
        "پشتیبان\u200cگیری",  # a zero-width non-joiner, as Persian spells
        "👨\u200d👩\u200d👧 co\xadop",  # joiners of an emoji sequence, a soft hyphen
        "\ue0b0 a font's glyph",  # private use
    ],
    ids=ascii,
)
def test_text_is_left_as_it_is(text: str) -> None:
    assert printable(text) == text


def test_every_character_of_the_categories() -> None:
    for code in range(0x110000):
        char = chr(code)
        if unicodedata.category(char) in ESCAPED and char not in TEXT:
            assert printable(char).startswith("\\"), hex(code)
        elif char != "\\":
            assert printable(char) == char, hex(code)


S = "\\udce2\\udc80\\udcaeevil\\udcc2\\udc9b2J"  # JSON: U+202E and CSI's bytes, alone


def smuggle(h: Handler) -> None:
    if h.path.startswith("/api/v1/runs/"):
        body = f'{{"attempts": [{{"id": "x", "message": "{S}", "output": "{S}"}}]}}'
    elif h.path.startswith("/api/v1/runs"):
        body = f'{{"items": [{{"id": "{S}", "task": "a/b"}}]}}'
    else:
        body = f'{{"items": [{{"key": "a/b", "state": "{S}", "error": "{S}"}}]}}'
    h.send(200, body)


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
@pytest.mark.parametrize("argv", [("tasks",), ("runs",), ("runs", "--id", "a.b.20261204T205330Z")])
def test_lone_surrogates_reach_no_terminal(
    hostile: HostileServer, locale: str, argv: tuple[str, ...]
) -> None:
    hostile.answer = smuggle
    env = {"LC_ALL": locale, "PYTHONIOENCODING": "" if locale != "C" else "ascii:strict"}
    env = {k: v for k, v in env.items() if v}
    done = crontask(*argv, "--server", hostile.url, env=env, timeout=60)
    assert done.code == 0, done.err
    assert "Traceback" not in done.err
    for said in (done.out, done.err):
        assert "\u202e" not in said, ascii(said)
        assert "\x9b" not in said, ascii(said)
        assert "\\udce2\\udc80\\udcaeevil" in said or said == "", ascii(said)
