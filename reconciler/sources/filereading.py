"""How the directory source (``files``) reads one file: its text, or the error that keeps
what it defined before, and the path as Locations show it.

Contract: a file is read only if it is a regular file of at most ``max_file_size`` bytes,
reached by links that stay inside ``confine_to`` (by default the root it was found under) as
resolved at this refresh; anything else is a ``FileState`` of the error, whose last good
definitions stay. Nothing here keeps state between files but the resolved roots.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from reconciler.core.desired import Definition, DefinitionError, Location
from reconciler.sources.boms import decoded, not_utf8
from reconciler.sources.documents import ParsedText, PlainText, parse_text, plain_definitions
from reconciler.sources.filestate import FileState, Signature, signature_of
from reconciler.sources.limits import excerpt
from reconciler.sources.reading import Unreadable, read_file, resolve_root
from reconciler.sources.rootpaths import closest_root
from reconciler.sources.rootstate import is_within
from reconciler.sources.walk import utf8

# A path is shown whole (it is not the file's content), but never with a control character in it.
_PATH_SHOWN = 4096


class FileReader:
    """The reading of one file, for ``DirectorySource``, which sets these attributes."""

    kind: str
    roots: list[Path]
    max_file_size: int
    revision: str | None
    relative_to: Path | None
    confine_to: Path | None
    confine_label: str | None
    _resolved: dict[Path, str | None]  # root -> its resolved path, this refresh

    def read(self, path: Path) -> FileState | None:
        """What ``path`` holds, read as a refresh reads it, without keeping it; None if there
        is no file there."""
        signature = signature_of(path)
        return None if signature is None else self._read(path, signature, None)

    def _read(self, path: Path, signature: Signature, before: FileState | None) -> FileState | None:
        """What ``path`` holds now; None if it is gone."""
        good = before.good if before else None
        loaded = self.load(path, signature)
        if loaded is None:
            return None
        if isinstance(loaded, FileState):  # unreadable: what it defined before stays
            return replace(loaded, good=good)
        signature, text = loaded
        parsed = parse_text(text, self._display(path), source=self.kind, revision=self.revision)
        return self._state(signature, parsed, good)

    def load(self, path: Path, signature: Signature) -> tuple[Signature, str] | FileState | None:
        """The text of ``path`` and its signature as read; a FileState of the error if it
        cannot be read (too large, a link out of bounds, not UTF-8); None if it is gone."""
        shown, revision = self._display(path), self.revision
        if not utf8(str(path)):
            why = "file name is not UTF-8: not read (rename it)"
            error = DefinitionError(Location(self.kind, shown, 1, 1, revision), why)
            return FileState(signature, None, (error,), revision=revision)
        root, label = self._confinement(path)
        try:
            data, signature = read_file(path, limit=self.max_file_size, root=root, root_label=label)
        except (FileNotFoundError, NotADirectoryError):  # deleted since the stat
            return None
        except Unreadable as err:
            error = err.error(Location(self.kind, shown, 1, 1, revision))
            return FileState(signature, None, (error,), revision=revision)
        try:
            return signature, decoded(data)
        except UnicodeDecodeError as err:
            line, column, why = not_utf8(data, err)
            error = DefinitionError(Location(self.kind, shown, line, column, revision), why)
            return FileState(signature, None, (error,), revision=revision)

    def plain_state(self, path: Path, signature: Signature, plain: PlainText) -> FileState | None:
        """What a plain text holds (``documents.plain_text``, read in another process); None
        if a task of it does not validate: then it is for ``_read`` to place the errors."""
        shown = self._display(path)
        parsed = plain_definitions(plain, shown, source=self.kind, revision=self.revision)
        return None if parsed is None else self._state(signature, parsed, None)

    def _state(
        self, signature: Signature, parsed: ParsedText, good: tuple[Definition, ...] | None
    ) -> FileState:
        """A file's state from its text; ``good``: what it defined before, kept if it has errors."""
        said = parsed.log_warnings()  # once per version of the file read (a resync reads no other)
        kept = (good, tuple(parsed.errors)) if parsed.errors else (tuple(parsed.definitions), ())
        return FileState(signature, *kept, parsed.ignored, self.revision, said)

    def _confinement(self, path: Path) -> tuple[str | None, str]:
        """The resolved folder ``path`` must stay inside (None if it cannot be resolved: then
        nothing is read), and its name for messages."""
        root = self.confine_to
        if root is None:
            root = closest_root(self.roots, path) or path  # the root that reads it
        if root not in self._resolved:
            self._resolved[root] = resolve_root(root)
        label = self.confine_label or f"the folder {excerpt(str(root), _PATH_SHOWN)}"
        return self._resolved[root], label

    def _display(self, path: Path) -> str:
        """``path`` as Locations show it (as given, or relative to ``relative_to``), escaped."""
        if self.relative_to is not None and is_within(path, self.relative_to):
            path = path.relative_to(self.relative_to)
        text = str(path)
        if not utf8(text):  # its bytes as they are, not Python's stand-ins for them
            text = os.fsencode(text).decode("utf-8", "backslashreplace")
        return excerpt(text, _PATH_SHOWN)
