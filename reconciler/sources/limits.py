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
- a document holds at most ``max_document_text`` characters of scalars (keys included), also
  counted *after* alias expansion, and all the documents of a file together at most
  ``max_document_text + 16 * len(text)``: a value count alone lets 9 000 aliases of one 32 KiB
  string through, 288 MiB for whatever copies or serializes the task (its spec hash, the API);
- a file reports at most ``max_errors`` problems;
- user text quoted in a message is one line of at most a few dozen characters (``excerpt``).
"""

from __future__ import annotations

import dataclasses

KIB = 1024
MIB = 1024 * KIB
DEFAULT_MAX_FILE_SIZE = MIB  # as Kubernetes objects are bounded (etcd's request limit: 1.5 MiB)
# Tasks one source holds (folders or git: ``taskbound``; CronTasks: ``kubernetes``): as many
# as the API may own, about 55 MiB of crontask's memory (bench/RESULTS.md); --max-tasks raises
# it for an instance given more.
DEFAULT_MAX_TASKS = 10_000
MAX_TASKS_RANGE = (1, 10_000_000)
# Bytes of one path (or link target): Linux's PATH_MAX. A longer one cannot be opened
# (ENAMETOOLONG), so nothing longer is worth reading from git either.
MAX_PATH = 4096

# How much of a user's value a message quotes.
EXCERPT = 40
# Below this many files one process reads them as fast as workers would start (``forked``).
PARALLEL_MIN_FILES = 256


_FILE_TEXT_PER_CHARACTER = 16  # see YamlLimits.file_text


@dataclasses.dataclass(frozen=True, slots=True)
class YamlLimits:
    max_documents: int = 10_000  # per file
    max_values: int = 10_000  # per document, counted after alias expansion
    max_depth: int = 100  # nesting of sequences and mappings
    max_errors: int = 20  # problems reported per file
    max_number_length: int = 100  # characters of an int or float scalar (int() is quadratic)
    # Characters of a document's scalars, counted after alias expansion: a character is at least
    # one byte, so this is at least 1 MiB of memory, under a Kubernetes object's 1.5 MiB.
    max_document_text: int = MIB

    def file_values(self, text_length: int) -> int:
        """The values all documents of a text of this length may count together. A text
        without aliases has at most about one value per character."""
        return self.max_values + 2 * text_length

    def file_text(self, text_length: int) -> int:
        """The characters of scalars all documents of a text of this length may hold together:
        a text without aliases holds at most its own length, and one whose documents share
        anchored text (a script, an image name) a few times that; an alias bomb spread over
        many documents, more. 16 times the text: a 1 MiB file, 17 MiB at most."""
        return self.max_document_text + _FILE_TEXT_PER_CHARACTER * text_length


ONE_DOCUMENT = "the limit for one document"  # whose limit a document meets, in messages


@dataclasses.dataclass(frozen=True, slots=True)
class Room:
    """What one document may count (values) and hold (characters of its scalars, keys
    included), both after alias expansion, and whose limit each is: one document's, or what
    is left of its file's."""

    values: int
    text: int
    bound: str = ONE_DOCUMENT
    text_bound: str = ONE_DOCUMENT


class FileBudget:
    """What the documents of one text may still count and hold together (``file_values``,
    ``file_text``): each document is given the room left (``room``) and spends what it used."""

    def __init__(self, limits: YamlLimits, text_length: int) -> None:
        self.limits = limits
        self.values = self.values_total = limits.file_values(text_length)
        self.text = self.text_total = limits.file_text(text_length)

    def spent(self) -> str | None:
        """Why the file's next document may not be read, or None."""
        if self.values <= 0:
            return (
                f"the documents of this file count more than {self.values_total} values "
                "together (the limit for a file of this size: an alias bomb?)"
            )
        if self.text <= 0:
            return (
                f"the documents of this file hold more than {format_size(self.text_total)} of "
                "text together (the limit for a file of this size: an alias bomb?)"
            )
        return None

    def room(self) -> Room:
        limits = self.limits
        bound = text_bound = ONE_DOCUMENT
        if self.values < limits.max_values:
            bound = f"what is left of the limit for this file, {self.values_total} values"
        if self.text < limits.max_document_text:
            text_bound = f"what is left of the limit for this file, {format_size(self.text_total)}"
        values = min(limits.max_values, self.values)
        return Room(values, min(limits.max_document_text, self.text), bound, text_bound)

    def spend(self, values: int, text: int) -> None:
        self.values -= values
        self.text -= text


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
