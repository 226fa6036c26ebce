"""What a failed git call said, as a ``GitError`` tells it (``gitprocess``): a summary of its
stderr for the status line (``summary``), and git's own fatal/error lines apart
(``own_errors``), for decisions on what git found. Kept apart from ``gitprocess``, which runs
git: this is only text."""

from __future__ import annotations

# Lines of git's stderr that a summary does not take as the cause before its first
# fatal:/error: line: what the remote says (a hostile one says anything) and git's advice.
_NOT_A_CAUSE = ("remote:", "hint:")
# The most of each such line a summary keeps: git's own fatal line must still fit in _MAX_SUMMARY.
_MAX_CAUSE = 160
_MAX_SUMMARY = 400


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
    """git's own fatal/error lines of ``stderr``, whole (a sign at the end of a 4 KB path
    stays), but those relaying the remote's error packet (``fatal: remote error: ...``).
    Lines without the prefix are not taken: a helper's cause (which an ssh server's stderr
    joins unprefixed), the line going on with a fatal:. (One the ssh server writes with git's
    prefix cannot be told from git's own.)"""
    lines = (line.strip() for line in stderr.splitlines())
    return [
        line
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
