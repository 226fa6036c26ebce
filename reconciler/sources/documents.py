"""From YAML text to CronTask definitions, with the place of every error.

Multi-document text (``---``) is read like ``kubectl apply -f``. Documents of other API groups
(a Deployment next to the CronTasks) are counted and ignored; a document that claims the
``crontask.dev`` group, or names no group at all, must be a valid CronTask. A list of CronTasks
in one document (``kind: List``, what ``kubectl get ct -o yaml`` writes, or a ``CronTaskList``)
is a definition error at its line that says how to split it: ignored, it would declare no task
and say nothing. A ``List`` of other objects is ignored like any document of another group.
A document whose ``apiVersion`` or ``kind`` key repeats, one value a CronTask's, is a task run
together with another object (``cat task.yaml deployment.yaml``): it is ours whatever its last
kind says, each repeated key an error at its place (as ``kubectl apply`` has it) named after
the task (its own ``metadata``, whether the other object comes first or last: the keys are
split into objects where one repeats, ``documentkeys``), which is kept as for any broken
document. Other objects run together are ignored; so is a ``metadata`` repeated alone (a stray
block after a task: the message says where the objects start). A Kubernetes CronJob is ignored
too, but said: a warning at its place (``docwarnings.DocumentWarning``), not an error.

Positions come from the YAML node tree, so a pydantic error such as ``spec.timeZone: unknown
time zone`` is reported at the line and column of ``timeZone:`` in the file. libyaml's C parser
is used when PyYAML was built with it (it is several times faster and keeps the same marks).

The text is untrusted (anyone who can commit to the task repository writes it), so reading it
is bounded by its length, never by what YAML aliases expand it to (see ``limits`` and
``yamlwalk``): a 500-byte alias bomb, a document nested a thousand deep, ten thousand empty
documents or a number of a million digits is an error at its line and column, found in
milliseconds. Only YAML's standard tags are constructed (PyYAML's SafeLoader): ``!!python/...``
is an error. Messages quote user text (unknown field names, values) only as short one-line
excerpts, so that no file can be echoed whole into a log, the API or ``validate`` output.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterator
from typing import Any

import yaml
from pydantic_core import ErrorDetails

from reconciler.core.desired import Definition, DefinitionError, Location, SourceKind
from reconciler.core.jobspec import JobSpecError
from reconciler.core.model import API_GROUP, KIND, CronTask
from reconciler.core.schedule import ScheduleError
from reconciler.sources import pythonnames, syntaxhints
from reconciler.sources.boms import document_boms
from reconciler.sources.documentkeys import (
    KIND_FIELDS,
    claims_ours,
    key_before_error,
    key_of,
    key_of_node,
    key_of_split,
    objects_note,
    plain_value,
    split_objects,
)
from reconciler.sources.docwarnings import DocumentWarning, document_warning, log_warnings, placed
from reconciler.sources.limits import FileBudget, Room, YamlLimits, excerpt
from reconciler.sources.messages import MESSAGE, Problem, dotted, locator, message, more_in_file
from reconciler.sources.yamlmerge import MergingConstructor
from reconciler.sources.yamlpositions import Lines, Positions, reader_index
from reconciler.sources.yamlwalk import (
    MAP,
    SEQ,
    STR,
    Exceeded,
    NodeProblem,
    NotPlain,
    measure,
    plain_document,
    prescan,
    too_many_documents,
)

log = logging.getLogger("crontask.sources")
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

DEFAULT_LIMITS = YamlLimits()
# Bounds of what a message quotes: a key, a field path, a message of the model or the parser.
_MESSAGE = MESSAGE
# PyYAML's words for what its constructor refuses, where they tell a user little.
_CONSTRUCTOR_WORDS = {"found unhashable key": "a list or a map as a key: a key is a name (text)"}
# Texts longer than this are first counted from their events (see yamlwalk.prescan): a task
# file of ten CronTasks is some 4 KB, and the pass would only slow those down.
PRESCAN_LENGTH = 64 * 1024
TASK_LIST = (
    f"a list of CronTasks: crontask reads each {KIND} as its own YAML document; write each item"
    " as a document of its own, separated by '---', and remove the fields the server sets on"
    " an exported object (metadata.uid, metadata.resourceVersion, metadata.creationTimestamp,"
    " metadata.generation, status)"
)


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedText:
    definitions: list[Definition]
    errors: list[DefinitionError]
    ignored: int = 0  # documents of other API groups
    warnings: tuple[DocumentWarning, ...] = ()

    def log_warnings(self) -> tuple[DocumentWarning, ...]:  # each version of a file read
        return log_warnings(self.warnings)


@dataclasses.dataclass(frozen=True, slots=True)
class PlainText:
    """The data of a text whose every document is plain and within bounds (see
    ``plain_text``): what is left to do is validating each task, which needs no YAML."""

    documents: list[tuple[Any, int, int]]  # each CronTask's data, its line and column
    ignored: int  # documents of other API groups
    warnings: tuple[tuple[int, int, str], ...] = ()  # a DocumentWarning's line, column, message


def parse_text(
    text: str,
    path: str,
    *,
    source: str = SourceKind.FILE,
    revision: str | None = None,
    limits: YamlLimits = DEFAULT_LIMITS,
) -> ParsedText:
    """Every CronTask in ``text`` (the contents of ``path``), or the reasons they are not.

    Never raises for bad input: a YAML syntax error is one error at its position, and stops
    the reading of the rest of the text (as the parser cannot resynchronise). The work is
    bounded by the length of ``text`` (see ``limits``): a document that breaks a bound is an
    error at the node that breaks it, and at most ``limits.max_errors`` errors are reported.
    """
    plain = plain_text(text, limits)
    if plain is not None:
        parsed = plain_definitions(plain, path, source=source, revision=revision)
        if parsed is not None:
            return parsed
    return _parse_with_positions(text, path, source, revision, limits)


def plain_text(text: str, limits: YamlLimits = DEFAULT_LIMITS) -> PlainText | None:
    """The data of every document of ``text``, when all are plain (no tags, merge keys or
    repeated keys) and within ``limits``; None for anything else (a syntax error, a bound,
    a long text), which ``parse_text`` reads the long way, with the places of its errors.

    No validation happens here, so this half of reading can run in another process: the data
    is plain dicts, lists and scalars (``sources.ahead``)."""
    if len(text) > PRESCAN_LENGTH:
        return None  # counted from its events first, on the long way
    budget = FileBudget(limits, len(text))
    documents: list[tuple[Any, int, int]] = []
    warnings: list[tuple[int, int, str]] = []
    ignored = count = 0
    text = document_boms(text)
    lines, loader = Lines(text), _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            count += 1
            if count > limits.max_documents or budget.spent() is not None:
                return None
            api_version, kind, run_together = _kind_of(node)
            if run_together or _lists_tasks(kind, _node_items(node)):
                return None  # an error, which the long way places
            if _other_group(api_version, kind):
                ignored += 1
                budget.spend(1, 0)
                warnings += document_warning(node, api_version, kind, lines)
                continue
            room = budget.room()
            data, used = plain_document(
                node,
                values=room.values,
                depth=limits.max_depth,
                number_length=limits.max_number_length,
                text=room.text,
            )
            budget.spend(*used)
            if data is None:  # an empty document between two `---`
                continue
            if isinstance(data, dict) and _lists_tasks(data.get("kind"), _data_items(data)):
                return None
            kind_of = (data.get("apiVersion"), data.get("kind")) if isinstance(data, dict) else None
            if kind_of is not None and _other_group(*kind_of):
                ignored += 1
                warnings += document_warning(node, *kind_of, lines)
                continue
            documents.append((data, *lines.place(node.start_mark)))
    except (NotPlain, Exceeded, yaml.YAMLError, RecursionError):
        return None
    finally:
        loader.dispose()
    return PlainText(documents, ignored, tuple(warnings))


def plain_definitions(
    plain: PlainText, path: str, *, source: str = SourceKind.FILE, revision: str | None = None
) -> ParsedText | None:
    """The tasks of a plain text, validated; None if one is invalid (``parse_text`` then
    reads the text the long way, which places each error)."""
    definitions = []
    for data, line, column in plain.documents:
        try:
            task = CronTask.model_validate(data)
        except Exception:  # invalid, or worse: the long way reports either
            return None
        definitions.append(Definition.of(task, Location(source, path, line, column, revision)))
    at = functools.partial(Location, source, path, revision=revision)
    return ParsedText(definitions, [], plain.ignored, tuple(placed(plain.warnings, at)))


def _parse_with_positions(
    text: str, path: str, source: str, revision: str | None, limits: YamlLimits
) -> ParsedText:
    """``parse_text``'s long way: each document built on its own, and every error placed."""

    def at(line: int, column: int) -> Location:
        return Location(source, path, line, column, revision)

    text = document_boms(text)  # of its length, so the places of errors are those of the file
    found = _Found(limits.max_errors, Lines(text))
    if len(text) > PRESCAN_LENGTH:
        problem = prescan(
            text,
            _Loader,
            documents=limits.max_documents,
            values=limits.max_values,
            depth=limits.max_depth,
        )
        if problem is not None:
            mark, message = problem
            found.error(at(*found.lines.place(mark)), message)
            return ParsedText([], found.errors)
    budget = FileBudget(limits, len(text))
    documents = 0
    loader = _Loader(text)
    try:
        while not found.full and loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            documents += 1
            if documents > limits.max_documents:
                start = at(*found.lines.place(node.start_mark))
                found.error(start, too_many_documents(limits.max_documents))
                break
            spent = budget.spent()
            if spent is not None:
                found.error(at(*found.lines.place(node.start_mark)), spent)
                break
            budget.spend(*_document(node, at, budget.room(), limits, found))
    except yaml.MarkedYAMLError as err:
        where = err.problem_mark or err.context_mark
        line, column = found.lines.place(where) if where else (1, 1)
        reason = err.problem or err.context or "invalid YAML"
        hint = syntaxhints.hint(text, err, libyaml=_Loader is not yaml.SafeLoader)
        # The task the broken document names (one moved and broken in one change is kept).
        key = key_before_error(text, where, _Loader, limits) if where else None
        found.error(at(line, column), f"YAML syntax error: {excerpt(reason, _MESSAGE)}{hint}", key)
    except yaml.reader.ReaderError as err:  # a control character, a lone surrogate
        line, column = found.lines.of_index(reader_index(text, err, loader))
        character = err.character if isinstance(err.character, int) else ord(err.character)
        found.error(at(line, column), f"unacceptable character #x{character:04x}: {err.reason}")
    except yaml.YAMLError as err:
        found.error(at(1, 1), f"YAML error: {excerpt(str(err), _MESSAGE)}")
    except RecursionError:  # PyYAML's pure-Python composer, without libyaml's nesting limit
        found.error(at(1, 1), "document is nested too deeply")
    finally:
        loader.dispose()
    return ParsedText(found.definitions, found.errors, found.ignored, tuple(found.warnings))


class _Found:
    """What a text yields: definitions, documents ignored, warnings, at most ``limit`` errors."""

    def __init__(self, limit: int, lines: Lines) -> None:
        self.definitions: list[Definition] = []
        self.errors: list[DefinitionError] = []
        self.ignored = 0
        self.warnings: list[DocumentWarning] = []
        self.limit = limit
        self.lines = lines  # of the text, to place what is found in it
        self.full = False  # the limit was reached: stop reading

    def error(self, where: Location, message: str, key: str | None = None) -> None:
        if self.full:
            return
        if len(self.errors) == self.limit:
            self.full = True
            message = more_in_file(self.limit)
            key = None
        self.errors.append(DefinitionError(where, message, key))

    def ignore(self, node: yaml.Node, at: Any, api_version: Any, kind: Any) -> None:
        """A document of another group: counted, never built, and said if it is a CronJob."""
        self.ignored += 1
        self.warnings += placed(document_warning(node, api_version, kind, self.lines), at)


def _document(
    node: yaml.Node, at: Any, room: Room, limits: YamlLimits, found: _Found
) -> tuple[int, int]:
    """Read one document into ``found``; return the values it counted and the characters of
    text it held (its share of the file's budgets). ``room`` is what it may count and hold."""
    api_version, kind, run_together = _kind_of(node)
    if _lists_tasks(kind, _node_items(node)):
        found.error(at(*found.lines.place(node.start_mark)), TASK_LIST)
        return 1, 0  # never built, as an ignored document
    if not run_together and _other_group(api_version, kind):
        found.ignore(node, at, api_version, kind)  # never built: not ours to judge
        return 1, 0
    depth, number_length = limits.max_depth, limits.max_number_length
    positions: Positions | None = None
    try:
        # The common, valid document is built without positions, which are needed only to
        # report an error; anything unusual (or over a bound) takes the long way.
        data, used = plain_document(
            node, values=room.values, depth=depth, number_length=number_length, text=room.text
        )
    except (NotPlain, Exceeded):
        try:
            used = measure(node, room=room, depth=depth, number_length=number_length)
            positions = Positions(node, found.lines)
            data = MergingConstructor().construct_document(node)
        except NodeProblem as problem:
            where = at(*found.lines.place(problem.node.start_mark))
            found.error(where, problem.message, key_of_node(node))
            return room.values, room.text
        except yaml.MarkedYAMLError as err:  # e.g. a merge key (<<) of something not a map
            where = err.problem_mark or err.context_mark or node.start_mark
            said = err.problem or err.context or "invalid YAML"
            message = excerpt(_CONSTRUCTOR_WORDS.get(said, said), _MESSAGE)
            found.error(at(*found.lines.place(where)), message, key_of_node(node))
            return used
    if data is None:  # an empty document between two `---`
        return used
    if isinstance(data, dict) and _lists_tasks(data.get("kind"), _data_items(data)):
        # Its kind came from a merge key.
        found.error(at(*found.lines.place(node.start_mark)), TASK_LIST)
        return used
    if (
        not run_together
        and isinstance(data, dict)
        and _other_group(data.get("apiVersion"), data.get("kind"))
    ):
        found.ignore(node, at, data.get("apiVersion"), data.get("kind"))  # from a merge key
        return used
    if positions is not None and positions.duplicates:
        _duplicates(node, data, positions, run_together, at, found)
        return used
    root = at(*found.lines.place(node.start_mark))
    try:
        read = pythonnames.read(data)  # a field's Python name (time_zone) warned of, read
    except Exception as err:  # a bug of crontask: see unexpected()
        error = unexpected(err, root, key_of(data))
        found.error(error.location, error.message, error.key)
        return used
    if read.errors or read.respelled:
        positions = positions or Positions(node, found.lines)
        marks = [(positions.find(r.loc), r.warning()) for r in read.respelled]
        marks.sort(key=lambda m: (m[0].line, m[0].column))  # as the file has them, not the model
        found.warnings += [DocumentWarning(at(m.line, m.column), said) for m, said in marks]
    if read.task is None:
        _validation_errors(read.errors, positions or Positions(node, found.lines), at, data, found)
        return used
    found.definitions.append(Definition.of(read.task, root))
    return used


def _duplicates(
    node: yaml.Node, data: Any, positions: Positions, run_together: bool, at: Any, found: _Found
) -> None:
    """Each repeated key an error at its place. A repeated top-level key splits the document
    into objects, named after the CronTask's (``documentkeys``), else after the one built. A
    ``metadata`` repeated alone does not say that objects ran together, as a repeated
    ``apiVersion`` or ``kind`` does: its message says where they start, and which is ours."""
    top = any(len(dup_path) == 1 for dup_path, _ in positions.duplicates)
    split = split_objects(node) if run_together or top else None  # once, for every error
    key = key_of(data) if split is None else key_of_split(split)
    note = (
        objects_note(split, found.lines) if split is not None and top and not run_together else None
    )
    for dup_path, mark in positions.duplicates:
        message = f"{dotted(dup_path)}: duplicate key"
        if note is not None and len(dup_path) == 1:
            message += f" ({note})"
        found.error(at(mark.line, mark.column), message, key)


def unexpected(err: Exception, where: Location, key: str | None) -> DefinitionError:
    """The error of a document whose validation raised what no input should (a bug of
    crontask's), logged with its traceback: an error of its own key, whose last good definition
    stays in force, never a failed pass that stops every task. The message names the type only:
    the exception's text may quote the document at any length."""
    fields = {"location": str(where), "task": key}
    log.error("validating a definition failed unexpectedly", exc_info=err, extra={"fields": fields})
    reason = f"crontask failed to validate this CronTask ({type(err).__name__}): please report it"
    return DefinitionError(where, reason, key)


def _kind_of(node: yaml.Node) -> tuple[Any, Any, bool]:
    """A document's ``apiVersion`` and ``kind`` read from its nodes, without building it (the
    last of each, as PyYAML keeps; None when the document is no plain mapping or the value no
    plain string), and whether it is a CronTask run together with another object: a key
    repeats and one of their values says it is ours (two ConfigMaps stay another group's)."""
    if type(node) is not yaml.MappingNode or node.tag != MAP:
        return None, None, False
    values: dict[str, yaml.Node] = {}
    repeated = ours = False
    for key_node, value_node in node.value:
        if type(key_node) is yaml.ScalarNode and key_node.value in KIND_FIELDS:
            repeated = repeated or key_node.value in values
            values[key_node.value] = value_node
            said = _str_value(value_node)
            ours = ours or (
                claims_ours(None, said) if key_node.value == "kind" else claims_ours(said, None)
            )
    api_version, kind = (_str_value(values.get(field)) for field in KIND_FIELDS)
    return api_version, kind, repeated and ours


def _str_value(value: yaml.Node | None) -> Any:
    if type(value) is yaml.ScalarNode and value.tag == STR:
        return value.value
    return None


def _other_group(api_version: Any, kind: Any) -> bool:
    """Whether a document of this ``apiVersion`` and ``kind`` belongs to another API group
    (ignored). One that says it is a CronTask, or whose apiVersion starts like ours, is not:
    a typo there (``crontask.dev.v1alpha1``, ``Crontask.dev/...``) would silently remove the
    task, where as ours it is a definition error at its place that keeps it running."""
    if not isinstance(api_version, str) or not api_version:
        return False
    if claims_ours(api_version, kind):
        return False
    group = api_version.rpartition("/")[0]
    return group != API_GROUP


def _lists_tasks(kind: Any, items: Iterator[tuple[Any, Any]]) -> bool:
    """Whether a document of this ``kind`` is a list of CronTasks: a ``CronTaskList`` (of any
    apiVersion), or a ``List`` one of whose ``items`` (their apiVersion and kind) claims to be
    a CronTask. ``items`` is read only for a ``List``, and only as far as the first CronTask."""
    if not isinstance(kind, str):
        return False
    if kind.lower() == f"{KIND}List".lower():
        return True
    return kind == "List" and any(claims_ours(*item) for item in items)


def _node_items(node: yaml.Node) -> Iterator[tuple[Any, Any]]:
    """The apiVersion and kind of each item of a document's plain ``items`` sequence, read
    from its nodes (the document is not built: a List of other objects is not ours to judge)."""
    items = plain_value(node, "items")
    if type(items) is not yaml.SequenceNode or items.tag != SEQ:
        return
    for item in items.value:
        yield _kind_of(item)[:2]


def _data_items(data: dict[Any, Any]) -> Iterator[tuple[Any, Any]]:
    """``_node_items`` of a document already built."""
    items = data.get("items")
    if not isinstance(items, list):
        return
    for item in items:
        if isinstance(item, dict):
            yield item.get("apiVersion"), item.get("kind")


def _validation_errors(
    errors: list[ErrorDetails], positions: Positions, at: Any, data: Any, found: _Found
) -> None:
    locate, key = locator(errors), key_of(data)
    for item in errors:
        if found.full:
            return
        loc = tuple(item["loc"])
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, JobSpecError):
            # Each problem of an embedded JobSpec at its own field, as the API server names it.
            for problem in cause.problems:
                field = (*loc, *problem.path)
                mark = positions.find(field)
                found.error(at(mark.line, mark.column), str(Problem(field, problem.message)), key)
            continue
        mark = positions.find(loc)
        line, column = mark.line, mark.column
        if isinstance(cause, ScheduleError) and cause.column is not None:
            value = positions.values.get(loc)
            if value is not None and (value.plain_scalar or value.quoted):
                # Point at the offending field inside the expression, not at the key.
                line, column = value.line, value.column + cause.column + int(value.quoted)
        found.error(at(line, column), str(Problem(locate(item), message(item))), key)
