"""What comes over the wire from the Kubernetes API server, read within bounds: a list page's
body and a watch stream's lines, each with a deadline and a size bound, and their JSON decoded
with a bound on depth.

Kept apart from :mod:`reconciler.sources.kubernetes_watch` (the informer: what to list and
watch, and when) because this is the part that deals with bytes, not with Kubernetes:

- :func:`read_body` reads a list page as it comes, one read at a time, so each byte of a
  trickle is seen, and gives it up (:class:`Overdue`) past its deadline.
- :func:`lines` gives a watch stream's non-blank lines; a line longer than :data:`MAX_LINE`
  bytes is :class:`LineTooLong`, not memory without bound, and keep-alive blank lines or
  spaces cannot hold a watch open past its deadline.
- :func:`decode` replaces each value an object nests more than :data:`MAX_DEPTH` levels deep
  (the API server accepts 10 000 under ``x-kubernetes-preserve-unknown-fields``; Python's
  decoder fails near 1 000) by :data:`PRUNED`; :func:`pruned_path` says where.
- :func:`let_go` hands a connection back to the pool, closed unless its response was read to
  its end.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from reconciler.core import jsondepth
from reconciler.sources.limits import YamlLimits

READ_CHUNK = 64 * 1024
MAX_LINE = 64 * 1024 * 1024  # one watch event; an object in etcd is at most 1.5 MiB
# How deep an object may nest, its own mapping counting one: as deep as a task file's YAML.
MAX_DEPTH = YamlLimits().max_depth
EVENT_DEPTH = MAX_DEPTH + 1  # {"type": ..., "object": {...}}
PAGE_DEPTH = MAX_DEPTH + 2  # {"items": [{...}, ...], ...}


class LineTooLong(Exception):
    """A watch stream sent more than :data:`MAX_LINE` bytes without a newline."""


class Overdue(TimeoutError):
    """A response still being read past its deadline: a watch kept open (talking, or sending
    only keep-alive bytes) or a list page whose body trickles."""


class Pruned(str):
    """Where :func:`decode` left a value out. A string, so that an object holding it still
    encodes; told apart from the object's own strings by its type."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{self}>"


PRUNED = Pruned(f"nested more than {MAX_DEPTH} levels deep")


def let_go(resp: Any, read: bool) -> None:
    """Hand the connection of ``resp`` back to the pool; close it first unless the response
    was ``read`` to its end (left, cut, failed): what is left of it must not meet the next
    request."""
    with contextlib.suppress(Exception):
        if not read:
            resp.close()
        resp.release_conn()


def read_body(resp: Any, clock: Callable[[], float], deadline: float, seconds: float) -> bytes:
    """The whole body of ``resp``, read as it comes (``read1``: one read at a time, so each
    byte of a trickle is seen), or :class:`Overdue` once ``clock()`` has passed ``deadline``
    (``seconds`` after the request)."""
    body = bytearray()
    while chunk := resp.read1(READ_CHUNK):
        body += chunk
        if clock() > deadline:
            raise Overdue(f"a list page not in after {seconds:g} s ({len(body)} bytes came)")
    return bytes(body)


def lines(
    resp: Any,
    limit: int = MAX_LINE,
    *,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[str]:
    """The non-blank lines of a watch stream; :class:`Overdue` once ``clock()`` has passed
    ``deadline``, checked at every chunk: blank lines or spaces sent to keep the connection
    alive yield no line, yet must not keep the watch open."""
    buffer = bytearray()
    for chunk in resp.stream(amt=None, decode_content=False):
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            line = bytes(buffer[start:end])
            start = end + 1
            if line.strip():
                yield line.decode("utf-8", errors="replace")
        del buffer[:start]
        if len(buffer) > limit:
            raise LineTooLong(f"a watch event of more than {limit} bytes")
        if deadline is not None and clock() > deadline:
            raise Overdue(f"a watch still open after its deadline ({len(buffer)} bytes pending)")
    if buffer.strip():
        yield bytes(buffer).decode("utf-8", errors="replace")


def decode(text: str | bytes, depth: int) -> Any:
    """The JSON ``text``, each value nested more than ``depth`` levels deep replaced by
    :data:`PRUNED` (see :mod:`reconciler.core.jsondepth`)."""
    return jsondepth.decode(text, depth, PRUNED)


def pruned_path(value: Any) -> str | None:
    """The dotted path (``spec.job.spec.x``, ``items[2]``) of the first value of ``value`` that
    :func:`decode` left out, or None."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, Pruned):
            return path
        if isinstance(item, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(item))))
    return None
