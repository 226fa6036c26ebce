"""A CronTask sent as JSON, read as strictly as the YAML of a task file: a key given twice in one
object (JSON parsers keep the last without a word; YAML refuses it), nesting deeper than
:data:`BODY_DEPTH`, more than :data:`BODY_VALUES` values (counted as a task file's document
counts them, a key and its value two; as many as a stored API task may count, its JobSpec's
included), a number longer than :data:`NUMBER_LENGTH` characters or a text that is not UTF-8
(JSON's reader takes UTF-16 and UTF-32 too) is a :class:`BodyProblem` naming the place.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from reconciler.sources.api import STORED_LIMITS
from reconciler.sources.limits import YamlLimits

# A body read as a task file's YAML is (sources.limits).
BODY_DEPTH: Final = YamlLimits().max_depth
BODY_VALUES: Final = STORED_LIMITS.max_values  # what a stored task may count (its JobSpec's)
NUMBER_LENGTH: Final = YamlLimits().max_number_length


class BodyProblem(ValueError):
    """Why a body is not a JSON object crontask reads; ``path`` is where (within the body)."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class _Repeated(dict[str, Any]):
    """An object that named ``key`` more than once (marked, for the walk to place it)."""

    __slots__ = ("key",)

    def __init__(self, pairs: list[tuple[str, Any]], key: str) -> None:
        super().__init__(pairs)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) == len(pairs):
        return found
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return _Repeated(pairs, key)
        seen.add(key)
    raise AssertionError("a repeated key was counted")


def _number(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        if len(text) > NUMBER_LENGTH:
            # int() of a long text is quadratic, and past 4300 digits a ValueError.
            raise BodyProblem(
                f"a number is {len(text)} characters long, over the limit of {NUMBER_LENGTH}"
            )
        return kind(text)

    return parse


_INT, _FLOAT = _number(int), _number(float)


def parse_object(body: bytes) -> dict[str, Any]:
    """The JSON object ``body`` holds; BodyProblem for anything else (see the module)."""
    text = _utf8(body)
    if _most_values(text) > 2 * BODY_VALUES:  # then the walk would count over BODY_VALUES
        raise BodyProblem(_TOO_MANY)
    try:
        data = json.loads(text, object_pairs_hook=_object, parse_int=_INT, parse_float=_FLOAT)
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} column {err.colno}"
        raise BodyProblem(f"invalid JSON: {err.msg} at {where}") from None
    except RecursionError:
        raise BodyProblem(f"nested deeper than {BODY_DEPTH} levels") from None
    if not isinstance(data, dict):
        raise BodyProblem("Input should be a valid dictionary")
    _walk(data)
    return data


_QUOTED: Final = re.compile(r'"[^"]*"')
_TOO_MANY: Final = f"more than {BODY_VALUES:,} values (the limit for one task)"


def _most_values(text: str) -> int:
    """The ``[``, ``{``, ``,`` and ``:`` outside strings, and one: of valid JSON, the values
    ``_walk`` counts less one, plus one for each empty container (itself a value), so never
    more than twice them. Read before the JSON reader builds anything: a 1 MiB body of half a
    million empty lists took 22 MiB to build. Escapes go first, so that each string is a
    pair of quotes (a pattern that retries from each quote took quadratic time on a string
    of escaped quotes left open)."""
    # Escapes go first: an escaped backslash, then an escaped quote (a pattern of both cost
    # 25 ms on a megabyte of them, against 2 ms for the JSON reader); no other escape holds one.
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    bare = _QUOTED.sub("", unescaped)
    return 1 + sum(bare.count(mark) for mark in "[{,:")


def _utf8(body: bytes) -> str:
    """``body`` as UTF-8 text, past a byte order mark, as a task file is read; BodyProblem
    otherwise, worded as a file's (``sources.files``), placed as JSON's errors are (in
    characters). Bytes go to ``json.loads`` never: it guesses UTF-16 and UTF-32 from them,
    which a file or a YAML body is refused for."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        where = _byte_place(body, err.start)
        raise BodyProblem(f"not UTF-8: byte 0x{body[err.start]:02x} at {where}") from None
    # UTF-16 or UTF-32 without a byte order mark: its ASCII is valid UTF-8 between NULs, a
    # character JSON never holds raw (nor YAML), so the text would fail as JSON at a NUL,
    # with a message that does not say why.
    if (nul := body.find(b"\0")) >= 0:
        where = _byte_place(body, nul)
        raise BodyProblem(
            f"a NUL byte at {where}, which no JSON text holds (UTF-16 or UTF-32? send UTF-8)"
        )
    return text.removeprefix("\ufeff")


def _byte_place(body: bytes, index: int) -> str:
    """Where the byte at ``index`` is, counted as ``json`` counts its errors' places: in
    characters (the bytes before ``index`` are UTF-8: the decoder stops at the first that is
    not), past a byte order mark, which ``_utf8`` reads past."""
    before = body[:index].decode("utf-8").removeprefix("\ufeff")
    line = before.count("\n") + 1
    column = len(before) - before.rfind("\n")
    return f"line {line} column {column}"


# A lone UTF-16 surrogate, which a JSON escape (``"\ud800"``) can write but no UTF-8 text
# holds: a YAML file cannot carry one either.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _walk(data: dict[str, Any]) -> None:
    """BodyProblem at the first repeated key, nesting too deep, value too many (counted before
    the stack holds them: a 1 MiB body of half a million values took 80 MiB) or lone surrogate
    found. Each value carries its parent's link, not a copy of its path: the walk is linear."""
    Link = tuple[str | int, Any] | None
    stack: list[tuple[Any, int, Link]] = [(data, 0, None)]
    values = 1  # as yamlwalk counts a document's: the root, each item, each key and its value
    while stack:
        value, depth, link = stack.pop()
        if depth > BODY_DEPTH:
            raise BodyProblem(f"nested deeper than {BODY_DEPTH} levels", _path(link))
        if isinstance(value, _Repeated):
            path = _path((value.key, link))
            raise BodyProblem("duplicate key (a JSON reader would keep the last one)", path)
        if isinstance(value, str) and not value.isascii() and _SURROGATE.search(value):
            raise BodyProblem(_LONE_SURROGATE, _path(link))
        if isinstance(value, dict | list):
            values += len(value) * (2 if isinstance(value, dict) else 1)
            if values > BODY_VALUES:
                raise BodyProblem(_TOO_MANY, _path(link))
        if isinstance(value, dict):
            for key in value:
                if not key.isascii() and _SURROGATE.search(key):
                    # The key itself stays out of the path: no UTF-8 answer could hold it.
                    raise BodyProblem(f"a key {_LONE_SURROGATE}: {key!a}", _path(link))
            stack.extend((v, depth + 1, (k, link)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, depth + 1, (i, link)) for i, v in enumerate(value))


_LONE_SURROGATE: Final = "holds a lone UTF-16 surrogate escape, which is no Unicode text"


def _path(link: Any) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    while link is not None:
        part, link = link
        parts.append(part)
    return tuple(reversed(parts))
