"""One wording for a definition that does not validate, whatever it came from.

A file, a git commit, a custom resource and an API request are the same CronTask, so the same
mistake gets the same message from each: ``spec.retry.limit: 200 is out of range: allowed 0 to
100``. :func:`problems` turns pydantic's errors into ``(location, message)`` pairs; every piece
of the user's text a message quotes (an unknown field's name, a value) is a bounded, one-line
excerpt, so that no definition can be echoed whole into a log, an API answer or ``validate``
output.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError

from reconciler.core.actions import HttpAction, HttpHeader
from reconciler.core.jobspec import JobSpecError
from reconciler.core.model import CronTask, label_slip
from reconciler.core.runs import DNS1123_LABEL
from reconciler.sources.limits import YamlLimits, excerpt

EXCERPT_KEY = 40
MAX_SHOWN = YamlLimits().max_errors  # problems of one definition, as many as a file reports
PATH = 120
MESSAGE = 200

Loc = tuple[str | int, ...]

_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})
_CHOICE_ERRORS = frozenset({"enum", "literal_error"})
_LENGTH_ERRORS = frozenset({"string_too_long", "string_too_short", "too_long", "too_short"})
_KEY = "[key]"  # what pydantic's location adds after a mapping key that failed
_FIELD_NAME = "invalid_key"  # pydantic's "Keys should be strings", of a model's own fields
# What a strict number or switch field wants, by pydantic's error type (its own words, "Input
# should be a valid integer", say nothing of the "30" in quotes that is not one).
_NOT_A = {"int_type": "a whole number", "float_type": "a number", "bool_type": "true or false"}
_SWITCH_WORDS = {"true": True, "yes": True, "on": True, "y": True}
_SWITCH_WORDS |= {"false": False, "no": False, "off": False, "n": False}
# A number written the same in YAML 1.1 and JSON: no leading zero (YAML 1.1 reads 017 as the
# octal 15; JSON refuses it), no '+', no '.' without digits after it.
_PLAIN_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
_DNS_LABEL = (
    "a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter "
    "or digit)"
)

# A file committed to Git LFS is, in the commit, a pointer: three lines of text (its spec URL,
# the object's oid, its size) that YAML reads as one string.
LFS_POINTER = (
    "a Git LFS pointer, not a CronTask: crontask fetches no LFS object (keep task files out "
    "of LFS, or fetch them with `git lfs pull` before crontask reads the folder)"
)
_LFS_SPEC = "version https://git-lfs.github.com/spec/"
_README_CRONJOB = 'see "From a CronJob" in the README'
_CONTAINER = (
    f"a container runs as a Kubernetes Job: its JobSpec goes under spec.job.spec, {_README_CRONJOB}"
)
# Where a CronTask keeps what a Kubernetes CronJob or a Pod has at another place: an unknown
# field of that name there says where it goes, as no spelling is close (difflib finds those).
# Each target is a field of the model (a test holds them to it).
MOVES: dict[tuple[str, ...], str] = {
    ("spec", "jobTemplate"): (
        f"a CronJob's jobTemplate pastes in unchanged as spec.job: {_README_CRONJOB}"
    ),
    ("spec", "env"): "did you mean 'spec.command.env'?",
    ("spec", "args"): "did you mean 'spec.command.args'?",
    ("spec", "workingDir"): "did you mean 'spec.command.workingDir'?",
    ("spec", "activeDeadlineSeconds"): "did you mean 'spec.timeoutSeconds'?",
    ("spec", "backoffLimit"): "did you mean 'spec.retry.limit'?",
    ("spec", "image"): _CONTAINER,
    ("spec", "containers"): _CONTAINER,
    ("spec", "template"): _CONTAINER,
    ("spec", "command", "command"): (
        "a container's command and args are one list here, spec.command.args, the program first"
    ),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    loc: Loc  # pydantic's location: field names as the user wrote them (aliases), list indexes
    message: str  # without the location

    def __str__(self) -> str:
        where = dotted(self.loc)
        return f"{where}: {self.message}" if where else self.message


def problems(err: ValidationError, limit: int) -> tuple[list[Problem], int]:
    """The first ``limit`` problems, one per pydantic error, an embedded JobSpec's each at its
    own field, worded as the Kubernetes API server words them (``core.jobspec``); and how many
    more there are. Those are counted, not worded: wording an unknown field looks for a close
    name, and 80 000 of them took seconds."""
    found: list[Problem] = []
    more = 0
    errors = err.errors(include_url=False)
    locate = locator(errors)
    for item in errors:
        loc: Loc = tuple(item["loc"])
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, JobSpecError):
            inner = [Problem((*loc, *p.path), p.message) for p in cause.problems]
        elif len(found) < limit:
            inner = [Problem(locate(item), message(item))]
        else:
            more += 1
            continue
        room = max(limit - len(found), 0)
        found.extend(inner[:room])
        more += len(inner[room:])
    return found, more


def more_problems(count: int, limit: int) -> str:
    """What follows the first ``limit`` problems when ``count`` more were left out."""
    return f"{count} more problems; only the first {limit} are reported"


def more_in_file(limit: int) -> str:
    """The last problem of a file with more than ``limit``: the rest were not read."""
    return f"more problems in this file; only the first {limit} are reported"


def message(item: Any) -> str:
    """One pydantic error as a bounded line, without its location."""
    kind = item["type"]
    loc: Loc = tuple(item["loc"])
    context = item.get("ctx") or {}
    if item["input"] is None and _required(loc):
        # An empty value of a field that may be left out is left out (``core.fields``): this
        # one may not, and "" is no value of it either.
        return f"required field is empty (null): give it {_fixed(loc) or 'a value'}"
    if kind == "extra_forbidden":
        return "unknown field" + _suggestion(loc)
    if kind == _FIELD_NAME:  # no field's name is a number, a switch or a date
        return f"unknown field (YAML read its name as {_shape(item['input'])})"
    if kind == "string_type":
        return _not_a_string(item["input"])
    if kind in _NOT_A:
        return _not_a(kind, item["input"])
    if kind == "model_type" and not loc and _lfs_pointer(item["input"]):
        return LFS_POINTER
    if kind == "model_type":  # pydantic's words name the class ("instance of CommandAction")
        value = item["input"]
        return f"a map of fields{_such_as(loc)} (not {_shape(value)}{_colon_slip(loc, value)})"
    if kind == "dict_type":
        return f"a map (not {_shape(item['input'])})"
    if kind == "list_type":
        return f"a list (not {_shape(item['input'])})"
    if kind == "missing":
        fixed = _fixed(loc)
        return "required field is missing" + (f": give it {fixed}" if fixed else "")
    if kind == "string_pattern_mismatch" and context.get("pattern") == DNS1123_LABEL:
        value = str(item["input"])
        return f"'{excerpt(value)}'{label_slip(value)} is not {_DNS_LABEL}"
    if kind == "string_pattern_mismatch" and (said := _PATTERNS.get(str(context.get("pattern")))):
        return said.format(excerpt(str(item["input"])))  # a URL's says nothing of its value
    if kind == "string_too_short" and item["input"] == "" and (label := _label(loc)) is not None:
        # Before the pattern, pydantic's length bound ("at least 1 character") says nothing of
        # what a name is, nor of leaving it out.
        return f"must not be empty: {_DNS_LABEL}{label}"
    if kind in _RANGE_ERRORS and (allowed := _range(loc)) is not None:
        return f"{excerpt(str(item['input']))} is out of range: allowed {allowed}"
    if kind in _CHOICE_ERRORS:
        return excerpt(str(item["msg"]), MESSAGE) + _case_slip(item["input"], context)
    if kind in _LENGTH_ERRORS:
        return _length(kind, item["input"], context)
    # Messages of the model's own checks may quote the value (a schedule, a zone name).
    return excerpt(str(item["msg"]).removeprefix("Value error, "), MESSAGE)


def _pattern(model: type[BaseModel], field: str) -> str:
    rules = model.model_fields[field].metadata
    return next(str(p) for r in rules if (p := getattr(r, "pattern", None)))


# What a value that fails a field's pattern is, in words: pydantic quotes the pattern.
_PATTERNS = {
    _pattern(HttpAction, "url"): "not an http:// or https:// URL: write one such as "
    "https://example.com/path (the scheme in lower case, a host, no spaces: %20)",
    _pattern(HttpAction, "expect_status"): "'{}' is not a list of statuses: 3-digit statuses "
    "and ranges, separated by commas without spaces, e.g. '200-299,304'",
    _pattern(HttpHeader, "name"): "'{}' is not a header name: letters, digits and "
    "!#$%&'*+-.^_`|~ only, no spaces or ':' (e.g. X-Api-Key)",
}


def _length(kind: str, value: Any, context: dict[str, Any]) -> str:
    """``at most 256 items, not 257``: pydantic's words speak of its validation, and leave out
    a string's length."""
    most = kind.endswith("too_long")
    bound = context.get("max_length" if most else "min_length")
    unit = "character" if kind.startswith("string") else "item"
    unit = "entry" if isinstance(value, dict) else unit
    sized = isinstance(value, str | list | dict)
    count = len(value) if sized else context.get("actual_length")
    nouns = unit if bound == 1 else "entries" if unit == "entry" else f"{unit}s"
    said = f"at {'most' if most else 'least'} {bound} {nouns}"
    return f"{said}, not {count}" if count is not None else said


def _lfs_pointer(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(_LFS_SPEC)


def dotted(loc: Sequence[str | int]) -> str:
    """``spec.command.args[0]``; keys are the user's, so each is an excerpt, and a path too
    long to read keeps its end (the field that failed). Pydantic's ``[key]`` after a mapping
    key that failed is left out (the message says what is wrong with it), and that key is
    shown as a name (``env.8080``), not a list index."""
    out = ""
    key = len(loc) > 1 and loc[-1] == _KEY  # pydantic puts it last
    parts = loc[:-1] if key else loc
    for i, part in enumerate(parts):
        if isinstance(part, int) and not (key and i == len(parts) - 1):
            out += f"[{part}]"
        else:
            name = excerpt(str(part), EXCERPT_KEY) or '""'  # an empty key, as it is written
            out += f".{name}" if out else name
    return out if len(out) <= PATH else "..." + out[-(PATH - 3) :]


def locator(errors: Sequence[Any]) -> Callable[[Any], Loc]:
    """:func:`located` for each of ``errors``, with the value's error of a mapping entry whose
    key failed named as the key's error names the entry: pydantic has that key as 1 for an
    unquoted ``yes``, 'None' for a ``~``, a date's repr, in the value's location too."""
    names: dict[Loc, Loc] = {}
    for item in errors:
        loc: Loc = tuple(item["loc"])
        if len(loc) >= 2 and loc[-1] == _KEY:
            names[loc[:-1]] = located(item)[:-1]

    def locate(item: Any) -> Loc:
        loc: Loc = tuple(item["loc"])
        if loc and loc[-1] != _KEY:
            for end in range(len(loc), 0, -1):
                if (named := names.get(loc[:end])) is not None:
                    return (*named, *loc[end:])
        return located(item)

    return locate


def located(item: Any) -> Loc:
    """The location of one pydantic error, a mapping key that failed as YAML read it: pydantic
    has the key of an unquoted ``yes`` as 1, of a ``~`` as 'None'; its input is the key."""
    loc: Loc = tuple(item["loc"])
    if item["type"] == _FIELD_NAME and loc:  # a key of the resource's own fields: no [key]
        return (*loc[:-1], _as_read(item["input"]))
    if len(loc) < 2 or loc[-1] != _KEY:
        return loc
    return (*loc[:-2], _as_read(item["input"]), _KEY)


def _as_read(key: Any) -> str:
    """A mapping key as YAML read it: ``true`` for an unquoted ``yes``, ``null`` for ``~``."""
    if isinstance(key, bool):
        return "true" if key else "false"
    return "null" if key is None else str(key)


def _field(loc: Loc) -> tuple[type[BaseModel], Any] | None:
    """The model class holding the field at ``loc``, and its FieldInfo (None if unknown)."""
    model: Any = CronTask
    names = [part for part in loc if isinstance(part, str)]
    for i, part in enumerate(names):
        found = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        if found is None:
            return None
        if i == len(names) - 1:
            return model, found
        model = _model_of(found.annotation)
        if model is None:
            return None
    return None


def _required(loc: Loc) -> bool:
    """Whether ``loc`` names a required field of the model (not an entry of a list or map)."""
    found = _field(loc) if loc and isinstance(loc[-1], str) else None
    return found is not None and found[1].is_required()


def _fixed(loc: Loc) -> str | None:
    """``the value 'CronTask'`` for a field that has one value, as a wrong value's message
    names it (``apiVersion``, ``kind``); None for any other field."""
    found = _field(loc) if loc and isinstance(loc[-1], str) else None
    if found is None or get_origin(annotation := found[1].annotation) is not Literal:
        return None
    return "the value " + " or ".join(repr(value) for value in get_args(annotation))


def _label(loc: Loc) -> str | None:
    """What the message of an empty DNS-1123 label at ``loc`` adds (``, or leave it out for
    'default'``, nothing for a required one); None when ``loc`` is no label field."""
    found = _field(loc) if loc and isinstance(loc[-1], str) else None
    if found is None:
        return None
    field = found[1]
    types = get_args(field.annotation)  # Label | None: the label's rules are in its type
    rules = [*field.metadata, *(r for t in types for r in getattr(t, "__metadata__", ()))]
    if not any(getattr(rule, "pattern", None) == DNS1123_LABEL for rule in rules):
        return None
    if field.is_required():
        return ""
    return f", or leave it out for {field.default!r}" if field.default else ", or leave it out"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)


def _range(loc: Loc) -> str | None:
    """``0 to 100`` for a field with both bounds (``more than 0, at most 3600`` for open ones)."""
    found = _field(loc)
    if found is None:
        return None
    low = high = None
    for rule in found[1].metadata:
        if isinstance(rule, annotated_types.Ge):
            low = f"{rule.ge:g}" if isinstance(rule.ge, float) else f"{rule.ge}"
        elif isinstance(rule, annotated_types.Gt):
            low = f"more than {rule.gt:g}"
        elif isinstance(rule, annotated_types.Le):
            high = f"{rule.le:g}" if isinstance(rule.le, float) else f"{rule.le}"
    if low is None or high is None:
        return None
    return f"{low}, at most {high}" if low.startswith("more") else f"{low} to {high}"


def _suggestion(loc: Loc) -> str:
    """`` (did you mean 'retry'?)`` for a misspelt field, when one is close enough; where a
    CronJob or a Pod has the field, where it goes."""
    if len(str(loc[-1])) > EXCERPT_KEY:
        return ""
    if (move := MOVES.get(tuple(p for p in loc if isinstance(p, str)))) is not None:
        return f" ({move})"
    model: Any = CronTask
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        if field is None:
            return ""
        model = _model_of(field.annotation)
        if model is None:
            return ""
    names = [f.alias or n for n, f in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _shape(value: Any) -> str:
    """What YAML (or JSON) made of a value, in its words: ``the boolean true``, ``a list``."""
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"the number {excerpt(str(value))}"
    if value is None:
        return "null"
    if isinstance(value, datetime.datetime):
        return f"the timestamp {value.isoformat()}"
    if isinstance(value, datetime.date):
        return f"the date {value.isoformat()}"
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else "a value of another kind"


def _not_a_string(value: Any) -> str:
    """Where a string goes, YAML 1.1 reads an unquoted ``yes``, ``on``, ``8080``, ``0755``
    (octal), ``2024-01-01`` or nothing at all as another kind. Pydantic never sees the text the
    user wrote, so the message says what it was read as, and how to keep it a string; in words
    that hold for a JSON body too (the API's), which has no unquoted strings."""
    quote = "quote it to mean the string"
    if isinstance(value, bool):
        spellings = "yes, on or true" if value else "no, off or false"
        return f"a string, not {_shape(value)} (in YAML, an unquoted {spellings}): {quote}"
    if value is None:
        return 'a string, not null (an empty value): give one, or "" for an empty string'
    if isinstance(value, int | float | datetime.date):
        return f"a string, not {_shape(value)}: {quote}"
    if isinstance(value, dict):
        return f"a string, not a map (in YAML, an unquoted ': ' makes one): {quote}"
    return f"a string, not {_shape(value)}"


def _not_a(kind: str, value: Any) -> str:
    """``a whole number, not the string '30': write it without quotes``: what a strict number
    or switch field got, and, when the text means a value of the field, how to write that (in
    words that hold for a JSON body too). YAML 1.1 reads ``1e3`` (no '.') as text."""
    wanted = _NOT_A[kind]
    if isinstance(value, bool):
        spellings = "yes, on or true" if value else "no, off or false"
        return f"{wanted}, not {_shape(value)} (in YAML, an unquoted {spellings})"
    if not isinstance(value, str):
        return f"{wanted}, not {_shape(value)}"
    said = f"{wanted}, not the string '{excerpt(value)}'"
    if kind == "bool_type":
        switch = _SWITCH_WORDS.get(value.strip().casefold())
        return said if switch is None else f"{said}: write {'true' if switch else 'false'}"
    return said + _number_hint(value, whole=kind == "int_type")


def _number_hint(text: str, whole: bool) -> str:
    """``: write it as 1000`` for a text that is a number of the field; else nothing."""
    try:
        number = float(text)
    except ValueError:
        return ""
    if not abs(number) < 1e15 or (whole and not number.is_integer()):  # nan, inf: not < 1e15
        return ""
    if _PLAIN_NUMBER.fullmatch(text.strip()):
        return ": write it without quotes"
    return f": write it as {excerpt(str(int(number) if whole else number))}"


def model_at(loc: Loc) -> type[BaseModel] | None:
    """The model whose fields a mapping at ``loc`` holds (``CronTask`` at the root), or None."""
    if not loc:
        return CronTask
    found = _field(loc)
    return _model_of(found[1].annotation) if found is not None else None


def _colon_slip(loc: Loc, value: Any) -> str:
    """``: write a space after the ':' of 'name:'`` for a string where the model at ``loc``
    goes that starts with one of its fields and a colon (``name:nightly``, one YAML string);
    the field is the model's word: the value is not quoted."""
    model = model_at(loc)
    if model is None or not isinstance(value, str) or ":" not in value:
        return ""
    name = value.partition(":")[0]
    names = {f.alias or n for n, f in model.model_fields.items()}
    return f": write a space after the ':' of '{name}:'" if name in names else ""


def _such_as(loc: Loc) -> str:
    """`` such as url`` for the model at ``loc``: its required fields, or its first two."""
    model = model_at(loc)
    if model is None:
        return ""
    fields = model.model_fields
    names = [f.alias or n for n, f in fields.items() if f.is_required()]
    names = names or [f.alias or n for n, f in list(fields.items())[:2]]
    return f" such as {', '.join(names)}"


def _case_slip(value: Any, context: dict[str, Any]) -> str:
    """`` (did you mean 'Forbid'?)`` for a value of a fixed set written in another case. The
    set is pydantic's ``expected`` (``'Allow', 'Forbid' or 'Replace'``): the model's own words,
    never the user's."""
    if not isinstance(value, str):
        return ""
    choices = re.findall(r"'([^']*)'", str(context.get("expected", "")))
    slip = next((c for c in choices if c.casefold() == value.casefold()), None)
    return f" (did you mean {slip!r}?)" if slip is not None else ""
