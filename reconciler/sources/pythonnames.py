"""A task file's fields spelled by their Python names (``time_zone`` for ``timeZone``): read for
now, each with a warning at its key, to be refused from a later release.

Every release before took a field by the Python name of its model's attribute too, while the
JSON schema refuses it and the API server drops it from a CronTask resource (applied with
``kubectl``, the task runs with the default). The models now read only the resource's spelling
(``core.fields``), and an API request is held to it; but a folder of files written the old way
must not find every task refused after an upgrade (at start there is no last good definition to
keep). So a file's document is validated as written, and only when the models refuse a key that
is the Python name of a field where it stands is that key respelled and the document validated
again (``read``): a key the models take as written (an ``env`` variable named ``value_from``) is
never touched. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from reconciler.core.model import CronTask
from reconciler.sources.messages import dotted, model_at

Loc = tuple[str | int, ...]
# A field is respelled at most this deep in fields respelled themselves (``value_from:`` holding
# ``secret_key_ref:``); deeper than any model, so that a round never repeats without end.
ROUNDS = 8


@dataclasses.dataclass(frozen=True, slots=True)
class Respelled:
    """A field written by its Python name, where the file has it (``loc``, its parents as
    written too) and its resource's spelling (``alias``)."""

    loc: Loc
    alias: str

    def warning(self) -> str:
        """What ``crontask validate`` says at the key (``docwarnings``)."""
        name = self.loc[-1]
        kubectl = (  # kubectl refuses an object without apiVersion, drops an unknown field
            "kubectl refuses a CronTask without apiVersion"
            if self.loc == ("api_version",)
            else "a CronTask applied with kubectl drops it"
        )
        return (
            f"{dotted(self.loc)}: write {self.alias}: the spelling {name} is read for now,"
            f" refused from a later release, and {kubectl}"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Read:
    """A document's task, or the errors that refuse it (their ``loc`` as the file has it);
    and the fields it spells by their Python names, either way."""

    task: CronTask | None
    errors: list[ErrorDetails]
    respelled: list[Respelled]


def read(data: Any) -> Read:
    """The task of ``data``, a file's document, each field spelled by its Python name read as
    its resource's spelling. Raises what ``CronTask.model_validate`` raises but a
    ValidationError, which is returned (``Read.errors``)."""
    renames: list[tuple[Loc, str, str]] = []  # a mapping's place, as respelled; a name; alias
    for _ in range(ROUNDS):
        try:
            task = CronTask.model_validate(data)
        except ValidationError as err:
            errors = err.errors(include_url=False)
        else:
            return Read(task, [], _written(renames))
        found = _python_names(errors, data)
        if not found:
            break
        for parent, name, alias in found:
            data = _renamed(data, parent, name, alias)
        renames += found
    return Read(None, [_as_written(item, renames) for item in errors], _written(renames))


def _python_names(errors: Sequence[ErrorDetails], data: Any) -> list[tuple[Loc, str, str]]:
    """Of ``errors``, the unknown fields that are a field's Python name where they stand and
    whose resource's spelling the mapping does not also hold (both written: the models refuse
    the Python name, as every release did)."""
    found = []
    for item in errors:
        loc = tuple(item["loc"])
        if item["type"] != "extra_forbidden" or not loc or not isinstance(loc[-1], str):
            continue
        model = model_at(loc[:-1])
        field = model.model_fields.get(loc[-1]) if model is not None else None
        alias = field.alias if field is not None else None
        holder = _at(data, loc[:-1])
        if alias is None or alias == loc[-1] or not isinstance(holder, dict) or alias in holder:
            continue
        found.append((loc[:-1], loc[-1], alias))
    return found


def _at(data: Any, loc: Loc) -> Any:
    """What ``data`` holds at ``loc``; None where an error's place is no path in it."""
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _renamed(data: Any, loc: Loc, name: str, alias: str) -> Any:
    """``data`` with the key ``name`` of the mapping at ``loc`` renamed ``alias`` in its place
    among the keys. The containers on the way are copied: a YAML alias (``*anchor``) shares
    one mapping among several places, where the same name may be no field at all."""
    if not loc:
        return {(alias if key == name else key): value for key, value in data.items()}
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[loc[0]] = _renamed(data[loc[0]], loc[1:], name, alias)  # type: ignore[index]
    return copy


def _back(loc: Loc, renames: Sequence[tuple[Loc, str, str]]) -> Loc:
    """``loc`` in the respelled document, as the file writes it: the innermost rename first,
    as each was found in a document respelled by those before it."""
    for parent, name, alias in reversed(renames):
        depth = len(parent)
        if loc[:depth] == parent and len(loc) > depth and loc[depth] == alias:
            loc = (*parent, name, *loc[depth + 1 :])
    return loc


def _as_written(item: ErrorDetails, renames: Sequence[tuple[Loc, str, str]]) -> ErrorDetails:
    if not renames:
        return item
    return {**item, "loc": _back(tuple(item["loc"]), renames)}


def _written(renames: Sequence[tuple[Loc, str, str]]) -> list[Respelled]:
    return [
        Respelled(_back((*parent, alias), renames[: i + 1]), alias)
        for i, (parent, _, alias) in enumerate(renames)
    ]
