"""Tasks adrift: a task whose last good definition went with its file while a broken document
of another file still names it (a file moved and broken in one commit, a new file written
before the old one is removed). Such a task keeps that definition in force, marked with the
error, as a broken file keeps its own, until a good definition of it, or no document, names it.

The removal and the broken document may arrive in two refreshes (a watcher's batches, the
removal first): a definition that went waits ``WINDOW`` seconds for a broken document to claim
it, and no longer, so that a task removed on purpose is not brought back by a later typo.

What is kept counts against the source's ``--max-tasks`` (``taskbound``): a definition is kept
only while there is room for it, or a commit that removes a file, names its tasks in broken
documents and adds as many new ones would grow the source past its bound at every round.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Hashable, Iterable

from reconciler.core.desired import Definition, DefinitionError

WINDOW = 2.0  # seconds a definition whose file went waits for a broken document to claim it


class Adrift:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._kept: dict[str, Definition] = {}  # in force, for a broken document's sake
        self._went: dict[str, tuple[Definition, float]] = {}  # no file defines them, since
        # The broken documents that name each task, by file: a refresh looks up the keys it
        # changed, not every error of every broken file (100 000 of them cost 15 ms a pass).
        self._naming: dict[str, dict[Hashable, DefinitionError]] = {}
        self._named_in: dict[Hashable, tuple[str, ...]] = {}

    def failing(self, place: Hashable, errors: Iterable[DefinitionError]) -> None:
        """The errors of the file at ``place`` are now ``errors`` (none: it reads, or went)."""
        for key in self._named_in.pop(place, ()):
            places = self._naming[key]
            del places[place]
            if not places:
                del self._naming[key]
        named: dict[str, DefinitionError] = {}
        for error in errors:
            if error.key is not None:
                named.setdefault(error.key, error)
        for key, error in named.items():
            self._naming.setdefault(key, {})[place] = error
        if named:
            self._named_in[place] = tuple(named)

    def went(self, definitions: Iterable[Definition]) -> None:
        """``definitions`` are defined by no file any more."""
        now = self._clock()
        self._went.update((d.key, (d, now)) for d in definitions)

    def settle(self, changed: set[str], defined: Collection[str], room: int) -> None:
        """After a refresh that changed ``changed``: ``defined`` holds the keys a file defines,
        ``room`` how many definitions the source may hold besides its files' (what is kept
        already included). The broken documents are those ``failing`` was told of."""
        horizon = self._clock() - WINDOW
        went = self._went = {
            key: (definition, at)
            for key, (definition, at) in self._went.items()
            if at >= horizon and key not in defined
        }
        keys = changed | self._kept.keys()
        named = {key: self._named(key) for key in keys if key in self._naming}
        room -= len(self._kept)
        for key in sorted(keys):  # in key order: which ones fit does not depend on a set's
            held = self._kept.pop(key, None)
            room += held is not None
            kept = held or went.get(key, (None, 0.0))[0]
            if kept is not None and key in named and key not in defined and room > 0:
                self._kept[key] = dataclasses.replace(kept, error=str(named[key]))
                went.pop(key, None)
                room -= 1

    def _named(self, key: str) -> DefinitionError:
        # The first place, as locations sort: the same error whatever order files came in.
        return min(self._naming[key].values(), key=lambda error: error.location)

    def count(self) -> int:
        return len(self._kept)

    def kept_among(self, keys: Iterable[str]) -> int:
        """How many of ``keys`` are kept here: a good definition of them lets them go."""
        return sum(key in self._kept for key in keys)

    def definitions(self) -> list[Definition]:
        return list(self._kept.values())

    def definitions_of(self, keys: Collection[str]) -> list[Definition]:
        return [self._kept[key] for key in keys if key in self._kept]
