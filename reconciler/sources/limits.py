"""The bounds on what the file-based sources read, and safe excerpts of what they quote.

Every definition comes from text someone else wrote (a committer to the task repository, a
ConfigMap), so every step is bounded by the size of that text, never by what it expands to:

- a file is read only if it is a regular file of at most ``max_file_size`` bytes (see
  ``reading``);
- a file holds at most ``max_documents`` YAML documents;
- a document counts at most ``max_values`` values (scalars, sequences, mappings) *after* YAML
  aliases are expanded, is nested at most ``max_depth`` deep, and all the documents of a file
  together count at most ``max_values + 2 * len(text)`` values: aliases can never make the work
  grow faster than the text (Kubernetes' YAML reader bounds alias expansion the same way since
  CVE-2019-11253);
- a file reports at most ``max_errors`` problems;
- user text quoted in a message is one line of at most a few dozen characters (``excerpt``).
"""

from __future__ import annotations

import dataclasses

KIB = 1024
MIB = 1024 * KIB
DEFAULT_MAX_FILE_SIZE = MIB  # as Kubernetes objects are bounded (etcd's request limit: 1.5 MiB)
# Tasks one folder or git source holds (``taskbound``): as many as the API may own, about 55 MiB
# of crontask's memory (bench/RESULTS.md); --max-tasks raises it for an instance given more.
DEFAULT_MAX_TASKS = 10_000
MAX_TASKS_RANGE = (1, 10_000_000)
# Bytes of one path (or link target): Linux's PATH_MAX. A longer one cannot be opened
# (ENAMETOOLONG), so nothing longer is worth reading from git either.
MAX_PATH = 4096

# How much of a user's value a message quotes.
EXCERPT = 40
# Below this many files one process reads them as fast as workers would start (``forked``).
PARALLEL_MIN_FILES = 256


@dataclasses.dataclass(frozen=True, slots=True)
class YamlLimits:
    max_documents: int = 10_000  # per file
    max_values: int = 10_000  # per document, counted after alias expansion
    max_depth: int = 100  # nesting of sequences and mappings
    max_errors: int = 20  # problems reported per file
    max_number_length: int = 100  # characters of an int or float scalar (int() is quadratic)

    def file_values(self, text_length: int) -> int:
        """The values all documents of a text of this length may count together. A text
        without aliases has at most about one value per character."""
        return self.max_values + 2 * text_length


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """``text`` fit to quote in one line of a log, an API answer or ``validate`` output: at
    most ``limit`` characters of it, with ``...`` when cut, and every character that is not
    printable (newlines, NUL, other control characters, bidirectional overrides) escaped as
    ``\\n``, ``\\x00``, ``\\u202e``."""
    cut = len(text) > limit
    if cut:
        text = text[:limit]
    if not text.isprintable():
        text = "".join(c if c.isprintable() else _escaped(c) for c in text)
        if len(text) > limit:
            text, cut = text[:limit], True
    return text + "..." if cut else text


def _escaped(char: str) -> str:
    escaped = repr(char)[1:-1]
    if escaped == char or len(escaped) < 2:  # repr keeps some non-printables (e.g. U+2028)
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return escaped


def format_size(size: int) -> str:
    """``512 KiB``, ``1 MiB``, ``1.5 MiB``, ``300 bytes``."""
    for unit, factor in (("GiB", 1024 * MIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"
