"""What list and watch hand out: watch events (as a filtered watch sees them), list results,
``continue`` tokens, and the ``Expired`` error of a resourceVersion older than the history."""

from __future__ import annotations

import base64
import binascii
import copy
import json
from dataclasses import dataclass
from typing import Any

from . import errors
from .errors import ApiError
from .selectors import Predicate

Obj = dict[str, Any]


@dataclass(frozen=True)
class WatchEvent:
    rv: int
    key: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    prev: Obj | None = None  # the state before a MODIFIED, for selector transitions

    def for_watcher(self, passes: Predicate) -> tuple[str, Obj] | None:
        """The event as a filtered watch sees it: an object that starts matching the filter is
        ADDED, one that stops matching is DELETED (its previous state, at this event's
        resourceVersion), as the real server's watch cache does."""
        if self.type != "MODIFIED" or self.prev is None:
            return (self.type, self.obj) if passes(self.obj) else None
        now, before = passes(self.obj), passes(self.prev)
        if now and before:
            return "MODIFIED", self.obj
        if now:
            return "ADDED", self.obj
        if before:
            gone = copy.deepcopy(self.prev)
            gone["metadata"]["resourceVersion"] = str(self.rv)
            return "DELETED", gone
        return None


@dataclass
class ListResult:
    items: list[Obj]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


class Expired(ApiError):
    """A resourceVersion older than the retained history."""


def encode_continue(after: tuple[str, str], rv: int) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": list(after)})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_continue(token: str, floor: int) -> tuple[str, str]:
    """The key a list continues after; 410 Expired when the token predates ``floor``."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        rv, start = int(decoded["rv"]), decoded["start"]
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise errors.bad_request(f"continue key is not valid: {e}") from e
    if rv < floor:
        raise Expired(
            410,
            "The provided continue parameter is too old to display a consistent list result. "
            "You can start a new list without the continue parameter.",
            reason="Expired",
        )
    return (start[0], start[1])
