"""What a failed git call said, as a ``GitError`` tells it (``gitprocess``): a summary of its
stderr for the status line (``summary``), and git's own fatal/error lines apart
(``own_errors``), for decisions on what git found; and ``Redactor``, which every message
goes through. Kept apart from ``gitprocess``, which runs git: this is only text.

All of it runs over text a remote wrote (an ssh server's stderr reaches git's unchanged, 64 KiB
of it: ``gitprocess``), so each pattern takes time linear in the text: a pattern that tried
every start over again cost seconds on one line, with the GIL held.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# The userinfo of an http(s) URL in git's messages: up to its first "@", and on to the last
# "@" before the next "/". A "/" in it (unencoded: "https://tok3n/S3CRET@host") made urlsplit,
# and git, end the authority there, so it may run past a "/". The "@" is optional in the
# pattern (and replaced only when found): a URL without one is then passed over whole, where a
# pattern that required it searched on from each "http://" in it (quadratic: 7 s on one 64 KiB
# line of "http://").
_HTTP_USERINFO = re.compile(r"(?i)(https?://)[^\s@]*(@(?:[^\s/@]*@)*)?")


class Redactor:
    """Removes known secrets and the userinfo of http(s) URLs from text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so that a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _HTTP_USERINFO.sub(_without_userinfo, text)


def _without_userinfo(found: re.Match[str]) -> str:
    return found[0] if found[2] is None else f"{found[1]}***@"


# Lines of git's stderr that a summary does not take as the cause before its first
# fatal:/error: line: what the remote says (a hostile one says anything) and git's advice.
_NOT_A_CAUSE = ("remote:", "hint:")
# The most of each such line a summary keeps: git's own fatal line must still fit in _MAX_SUMMARY.
_MAX_CAUSE = 160
_MAX_SUMMARY = 400
# The most of each of git's own lines ``own_errors`` keeps: a sign at the end of a 4 KB path
# stays, and a line an ssh server writes with git's prefix (64 KiB of it) is not carried whole.
MAX_OWN_LINE = 8 * 1024
CUT = " ... (cut)"


def summary(stderr: str, code: int) -> str:
    """git's own explanation: its fatal/error lines, each with the line straight after a
    fatal: that has no prefix of its own (git:// says "unable to connect to HOST:", then its
    errno on the next line), after the line or two before the first of them that are neither
    the remote's nor a hint (ssh says why it failed there: "ssh: connect to host ...",
    "Permission denied (publickey).", "Host key verification failed.": git's own line is only
    "Could not read from remote repository."); or its last line."""
    lines = [line.strip() for line in stderr.splitlines()]
    first = next((i for i, line in enumerate(lines) if _said(line)), None)
    if first is None:
        text = next((line for line in reversed(lines) if line), "")
    else:
        causes = [
            line[:_MAX_CAUSE]
            for line in lines[:first]
            if line and not line.startswith(_NOT_A_CAUSE)
        ][-2:]
        picked = list(causes)
        for i in range(first, len(lines)):
            if _said(lines[i]):
                picked.append(lines[i].split(":", 1)[1].strip())
                after = lines[i + 1] if i + 1 < len(lines) else ""
                if lines[i].startswith("fatal:") and _continues(after):
                    picked.append(after[:_MAX_CAUSE])
        text = "; ".join(picked)
    text = text or f"git exited with status {code}"
    return text if len(text) <= _MAX_SUMMARY else text[: _MAX_SUMMARY - 3] + "..."


def own_errors(stderr: str) -> list[str]:
    """git's own fatal/error lines of ``stderr``, each whole up to ``MAX_OWN_LINE`` characters
    (a longer one is cut, and ends with ``CUT``), but those relaying the remote's error packet
    (``fatal: remote error: ...``). Lines without the prefix are not taken: a helper's cause
    (which an ssh server's stderr joins unprefixed), the line going on with a fatal:. (One the
    ssh server writes with git's prefix cannot be told from git's own.) Cut after redaction
    (``gitprocess``): a cut before it could leave the first part of a secret."""
    lines = (line.strip() for line in stderr.splitlines())
    return [
        line if len(line) <= MAX_OWN_LINE else line[: MAX_OWN_LINE - len(CUT)] + CUT
        for line in lines
        if _said(line) and not line.split(":", 1)[1].lstrip().startswith("remote error:")
    ]


def _said(line: str) -> bool:
    """Whether ``line`` is one of git's fatal/error lines."""
    return line.startswith(("fatal:", "error:"))


def _continues(line: str) -> bool:
    """Whether ``line``, straight after a fatal: line, goes on with it: not blank (git's advice
    after "Could not read from remote repository." comes after one), and no line of its own
    (another fatal/error, the remote's, a hint, a warning)."""
    return bool(line) and not _said(line) and not line.startswith((*_NOT_A_CAUSE, "warning:"))
