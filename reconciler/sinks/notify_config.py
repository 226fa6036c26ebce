"""The ``--notifications`` file: receivers and routes, read with every error at ``file:line:col``.

```yaml
receivers:
  - name: ops-hook
    type: generic-hmac            # generic | generic-hmac | slack
    urlFile: /etc/crontask/hook-url        # or url: https://hooks.example/crontask
    secretFile: /etc/crontask/hook-secret  # generic-hmac only
routes:
  - receiver: ops-hook
    events: [failed, recovered]   # failed | recovered | definitionError | everyFailure
    match: {namespace: ops, name: "backup-*", source: git}   # all optional
    repeatInterval: 4h            # a reminder while still failing; unset: none
```

Unknown fields are errors, as everywhere in crontask. URLs and secrets may come from files
(relative paths are relative to this file); those files are checked when the file is read and
read again at each delivery, so they can be rotated; their contents never reach a log line.
``crontask validate`` may run where they are not (CI): one it cannot read is a warning there.
A URL's host is a host name or an IP address (``notify_url``): httpx would send to any it
reads (``${X}``).
Every problem is said at once: the fields', and what the valid parts refer to (a route's
receiver, a receiver's files), not the latter only once the former are fixed.
Reading is bounded: the file at most 256 KiB, at most 10 000 values, 50 receivers, 200 routes.

Here: the model of the file, :func:`load` and :func:`parse` (its fields, then what they refer
to), and :class:`Notifications`, which reads the receivers' files. The YAML itself, the place of
each value in it, and the wording of an error at its place are ``notify_config_yaml``'s; what
a route's ``match.name`` glob cannot mean (a set fnmatch reads otherwise, no task's name) is
``notify_glob``'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic import model_validator as _model_validator
from pydantic.alias_generators import to_camel

from reconciler.core.desired import SourceKind
from reconciler.core.fields import Label
from reconciler.core.textplace import byte_place
from reconciler.secretfile import read_secret_file
from reconciler.sinks import notify_glob
from reconciler.sinks.notify_config_yaml import Builder, describe, nearest, read_yaml

# Re-exported: the error of load and parse, part of this module's contract.
from reconciler.sinks.notify_config_yaml import NotificationConfigError as NotificationConfigError

# Re-exported: what a receiver's URL may be, part of this module's contract (and --external-url's).
from reconciler.sinks.notify_url import MAX_URL as MAX_URL
from reconciler.sinks.notify_url import check_url as check_url

MAX_FILE_BYTES: Final = 256 * 1024
MAX_SECRET_BYTES: Final = 4096
MAX_RECEIVERS: Final = 50
MAX_ROUTES: Final = 200
MIN_REPEAT: Final = 1.0
MAX_REPEAT: Final = 366 * 86400.0
# At most 12 digits a unit (366d is 31622400s: 8): no sum of such overflows a float.
_DURATION: Final = re.compile(r"^(?:(\d{1,12})d)?(?:(\d{1,12})h)?(?:(\d{1,12})m)?(?:(\d{1,12})s)?$")


class Event(enum.StrEnum):
    FAILED = "failed"  # ok -> failing (the first failure; reminders while it lasts)
    RECOVERED = "recovered"  # failing -> ok
    DEFINITION_ERROR = "definitionError"  # a new definition error or conflict
    EVERY_FAILURE = "everyFailure"  # every run that ends failing


M = TypeVar("M", bound=BaseModel)


class _Config(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


Name = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


class Receiver(_Config):
    name: Name
    type: Literal["generic", "generic-hmac", "slack"]
    url: str | None = Field(None, max_length=MAX_URL)
    url_file: Path | None = None
    secret_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None:
            check_url(value, instead="; put the URL in a file and name it with urlFile")
        return value

    @_model_validator(mode="after")
    def _complete(self) -> Receiver:
        if (self.url is None) == (self.url_file is None):
            raise ValueError("give exactly one of url and urlFile")
        if self.type == "generic-hmac" and self.secret_file is None:
            raise ValueError("a generic-hmac receiver needs secretFile (the HMAC key)")
        if self.type != "generic-hmac" and self.secret_file is not None:
            raise ValueError(f"secretFile is for generic-hmac receivers, not {self.type}")
        return self


class Match(_Config):
    # A task's namespace is a DNS-1123 label: any other value would match no task, ever.
    namespace: Label | None = None
    name: str | None = Field(None, min_length=1, max_length=253, description="a glob: backup-*")
    source: SourceKind | None = None

    @field_validator("namespace", mode="before")
    @classmethod
    def _whole(cls, value: Any) -> Any:
        # Before the label's own check, whose message cannot say what was meant instead.
        if isinstance(value, str) and "/" in value:
            namespace, _, name = value[:127].partition("/")  # a value may be long
            raise ValueError(
                f"{value[:127]!r} is a namespace and a name: write namespace: {namespace} and "
                f"name: {name}"
            )
        if isinstance(value, str) and any(c in value for c in "*?["):
            raise ValueError(
                f"{value[:63]!r} is a glob: a namespace is matched whole (leave it out to match "
                "every namespace)"
            )
        return value

    @field_validator("name")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        # A task's name is lower case (DNS-1123): a capital outside a [set] matches no task.
        # Sets end where fnmatch ends them: a ']' first in one ('[!]A]') is of the set.
        outside = notify_glob.outside_sets(value or "")
        if "/" not in outside and outside != outside.lower():
            raise ValueError(f"task names are lower case: {value!r} can match none")
        if value is not None and (why := notify_glob.misread(value)) is not None:
            raise ValueError(f"{value!r}: {why}")
        if value is not None and (why := notify_glob.unmatchable(value)) is not None:
            raise ValueError(f"{value!r} can match no task: {why}")
        return value


class Route(_Config):
    receiver: Name
    events: list[Event] = Field(min_length=1, max_length=4)
    match: Match = Field(default_factory=Match)
    repeat_interval: float | None = None

    @field_validator("events")
    @classmethod
    def _unique(cls, events: list[Event]) -> list[Event]:
        if len(set(events)) != len(events):
            raise ValueError("an event is listed twice")
        return events

    @field_validator("repeat_interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        if value is None:
            return None
        return parse_interval(value)

    @field_validator("repeat_interval")
    @classmethod
    def _reminds(cls, value: float | None, info: ValidationInfo) -> float | None:
        # Reminders are of "failed" only (notify.py): without it the interval does nothing.
        # Here, not in a model validator, for the error's place: the field's line, not the
        # route's. ``events`` is in info.data only if valid (its own error is said then).
        events = info.data.get("events")
        if value is not None and events is not None and Event.FAILED not in events:
            raise ValueError(
                "reminders are of failed only: add failed to events, or remove repeatInterval"
            )
        return value


class NotificationConfig(_Config):
    # Names unique and routes to receivers that exist: checked by parse (_references),
    # which knows where each receiver is written; a check here could only say "(top level)".
    receivers: list[Receiver] = Field(min_length=1, max_length=MAX_RECEIVERS)
    routes: list[Route] = Field(min_length=1, max_length=MAX_ROUTES)


@dataclasses.dataclass(frozen=True)
class Notifications:
    """A checked file: the config, where relative paths start, and what in it is valid but
    does nothing (``file:line:col: warning: ...``, which ``crontask validate`` prints)."""

    config: NotificationConfig
    base: Path
    warnings: tuple[str, ...] = ()

    def path(self, value: Path) -> Path:
        return value if value.is_absolute() else self.base / value

    def url_of(self, receiver: Receiver, *, named: bool = False) -> str:
        """The receiver's URL (read from ``urlFile`` now). ValueError if it is unusable; the
        message never contains the URL. It names the file (``urlFile: PATH: ...``) if it
        cannot be read or is empty, and, ``named``, if what it holds is no usable URL (a
        delivery's line has no place of the file to say it)."""
        if receiver.url is not None:
            return receiver.url
        assert receiver.url_file is not None
        path = self.path(receiver.url_file)
        try:
            # A byte order mark first (a Windows editor's) is no part of the URL.
            url = _read_small(path, "urlFile").decode("utf-8-sig").strip()
        except UnicodeDecodeError:
            # Python's own words name neither the file nor what to do, and place a byte inside
            # the secret the file holds.
            raise ValueError(f"urlFile: {path}: not UTF-8 text{_HOLD_THE_URL}") from None
        if not url:
            raise ValueError(f"urlFile: {path}: the file is empty")
        try:
            check_url(url, instead=_HOLD_THE_URL)
        except ValueError as err:
            raise ValueError(f"urlFile: {path}: {err}" if named else str(err)) from None
        return url

    def secret_of(self, receiver: Receiver) -> bytes:
        assert receiver.secret_file is not None
        path = self.path(receiver.secret_file)
        secret = _read_small(path, "secretFile").strip()
        if not secret:
            raise ValueError(f"secretFile: {path}: the file is empty")
        return secret


# What a urlFile that holds something other than a URL is told, after its problem.
_HOLD_THE_URL: Final = ": the file must hold the URL itself"


def parse_interval(value: Any) -> float:
    if not isinstance(value, str):
        # A YAML number (3600, 1:30, 0x...) has no unit; str() of one of 5 000 digits fails.
        raise ValueError("a duration needs a unit (examples: 30m, 4h, 1d12h)")
    text = value.strip()
    found = _DURATION.match(text) if text else None
    if found is None or not any(found.groups()):
        shown = text[:32] + ("..." if len(text) > 32 else "")
        raise ValueError(f"{shown!r} is not a duration from 1s to 366d (examples: 30m, 4h, 1d12h)")
    days, hours, minutes, seconds = (int(g or 0) for g in found.groups())
    total = float(days * 86400 + hours * 3600 + minutes * 60 + seconds)
    if not MIN_REPEAT <= total <= MAX_REPEAT:
        raise ValueError("repeatInterval must be between 1s and 366d")
    return total


class _Unreadable(ValueError):
    """A receiver's file that cannot be read here (missing, a folder on its path closed):
    unlike one read that holds no usable URL, it may be fine where crontask runs."""


def _read_small(path: Path, what: str) -> bytes:
    """The bytes of ``path``; ValueError ``what: path: problem`` (read_secret_file's problem:
    ``cannot read: No such file or directory``, ``larger than 4 KiB: not read``, ...),
    :class:`_Unreadable` if the file could not be read at all."""
    try:
        return read_secret_file(path, MAX_SECRET_BYTES)
    except ValueError as err:
        # read_secret_file raises from the OSError of the stat, open or read ("from None"
        # hides it from a traceback, not from __context__); its other refusals are not OSErrors.
        unreadable = isinstance(err.__context__, OSError)
        raise (_Unreadable if unreadable else ValueError)(f"{what}: {path}: {err}") from None


Warn = Callable[[str], None]
_NOT_CHECKED: Final = "not checked (crontask run refuses to start if it cannot read it)"


def load(path: str | Path, *, warn: Warn | None = None) -> Notifications:
    """Read and check the file; :class:`NotificationConfigError` lists every problem as
    ``file:line:col: field: message``. The files it names must be readable, unless ``warn``
    is given (``crontask validate``, in CI: they are where crontask runs): one that cannot be
    read here is then said to it, ``file:line:col: warning: ...``, and not checked."""
    path = Path(path)
    try:
        # A regular file only, opened without waiting: a FIFO would hold start-up until a
        # writer came, and a device such as /dev/zero never ends. Not yet a secret (below).
        raw = read_secret_file(path, MAX_FILE_BYTES, public=True)
    except ValueError as exc:
        raise NotificationConfigError(f"{path}: {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        # Refused, as a task's file is: read with each such byte replaced, a URL holding one
        # (a file saved as Latin-1) was another URL, and every delivery failed. The byte is not
        # said: it may be one of a secret URL's.
        line, column = byte_place(raw, err.start)
        raise NotificationConfigError(
            f"{path}:{line}:{column}: not UTF-8 text: save the file as UTF-8"
        ) from None
    notifications = parse(text, str(path), path.parent, warn=warn)
    if any(receiver.url is not None for receiver in notifications.config.receivers):
        # It holds a URL, often a webhook's token (Slack's are): one others may read is said,
        # by reading it as the secret it is. One that names its URLs by urlFile holds none
        # (git checks a file out 0644 in CI: a warning there could not be silenced).
        with contextlib.suppress(ValueError):  # changed since: it was read above
            read_secret_file(path, MAX_FILE_BYTES)
    return notifications


def parse(text: str, source: str, base: Path, *, warn: Warn | None = None) -> Notifications:
    """Check ``text``, the file's contents, read from ``source``, whose folder is ``base``
    (``warn``: as :func:`load`'s)."""
    data, builder = read_yaml(text, source)
    try:
        config = NotificationConfig.model_validate(data)
    except ValidationError as exc:
        # With what the parts that are valid refer to: all in one round, not two.
        partial = _partial_references(data, base, builder, source, warn)
        raise NotificationConfigError(
            "\n".join([describe(exc, builder, source, _fields_at), *partial])
        ) from None
    notifications = Notifications(config, base)
    names = {r.name for r in config.receivers}
    receivers, routes = list(enumerate(config.receivers)), list(enumerate(config.routes))
    if problems := _references(notifications, receivers, routes, names, builder, source, warn):
        raise NotificationConfigError("\n".join(problems))
    warnings = (*_python_names(data, builder, source), *_unrouted(config, builder, source))
    return dataclasses.replace(notifications, warnings=warnings)


def _python_names(data: Any, builder: Builder, source: str) -> list[str]:
    """A warning at each key of ``data`` (valid: the file as read) that spells a field by its
    Python name (``url_file``), as a task file's are: read for now."""
    spots: list[tuple[tuple[str | int, ...], Any]] = []
    for group in ("receivers", "routes"):
        for i, item in enumerate(data[group]):
            spots.append(((group, i), item))
            if group == "routes" and isinstance(item.get("match"), dict):
                spots.append(((group, i, "match"), item["match"]))
    warnings = []
    for loc, mapping in spots:
        for name, field in _MODELS[
            tuple(p for p in loc if isinstance(p, str))
        ].model_fields.items():
            if field.alias and field.alias != name and name in mapping:
                line, column = builder.key_marks.get((*loc, name)) or nearest(builder.marks, loc)
                where = f"{loc[0]}[{loc[1]}]" + "".join(f".{p}" for p in (*loc[2:], name))
                warnings.append(
                    f"{source}:{line}:{column}: warning: {where}: write {field.alias}: the "
                    f"spelling {name} is read for now, refused from a later release"
                )
    return warnings


def _fields_at(loc: tuple[str | int, ...]) -> list[str]:
    """The fields, as the file spells them, of the mapping that holds ``loc``'s last key."""
    path = tuple(part for part in loc[:-1] if not isinstance(part, int))
    model = _MODELS.get(path)
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


_MODELS: Final[dict[tuple[str | int, ...], type[BaseModel]]] = {
    (): NotificationConfig,
    ("receivers",): Receiver,
    ("routes",): Route,
    ("routes", "match"): Match,
}


def _unrouted(config: NotificationConfig, builder: Builder, source: str) -> tuple[str, ...]:
    """A warning for each receiver that no route names: valid, and sent nothing (a route
    removed, or one naming another receiver by mistake)."""
    routed = {route.receiver for route in config.routes}
    warnings = []
    for i, receiver in enumerate(config.receivers):
        if receiver.name not in routed:
            line, column = nearest(builder.marks, ("receivers", i, "name"))
            warnings.append(
                f"{source}:{line}:{column}: warning: receivers[{i}]: no route sends to "
                f"{receiver.name!r}: it is sent no notification"
            )
    return tuple(warnings)


def _partial_references(
    data: Any, base: Path, builder: Builder, source: str, warn: Warn | None
) -> list[str]:
    """The problems of :func:`_references` among the receivers and routes of ``data`` that are
    valid on their own, when the file as a whole is not: a route leads nowhere only if no
    receiver, valid or not, has its name."""
    data = data if isinstance(data, dict) else {}
    raw = data.get("receivers") if isinstance(data.get("receivers"), list) else []
    receivers = _valid(Receiver, raw, MAX_RECEIVERS)
    routes = _valid(Route, data.get("routes"), MAX_ROUTES)
    names = {r["name"] for r in raw if isinstance(r, dict) and isinstance(r.get("name"), str)}
    # A placeholder config: only what _references reads (the receivers' files) is used.
    notifications = Notifications(NotificationConfig.model_construct(receivers=[], routes=[]), base)
    return _references(notifications, receivers, routes, names, builder, source, warn)


def _some(names: set[str], most: int = 10) -> str:
    """The first ``most`` names, one that is long or not printable quoted and cut to 63
    characters: from a file that does not validate they may be thousands, or long, and each
    route to none names them."""
    shown = [
        name if len(name) <= 63 and name.isprintable() else repr(name[:63])
        for name in sorted(names)[:most]
    ]
    more = f", ... and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(shown) + more if shown else "none"


def _valid(model: type[M], items: Any, most: int) -> list[tuple[int, M]]:
    """The items of the list ``items`` that ``model`` validates, with their indexes; of the
    first ``most`` only (a longer list is an error of its own)."""
    valid = []
    for i, item in enumerate(items[:most] if isinstance(items, list) else []):
        with contextlib.suppress(ValidationError):
            valid.append((i, model.model_validate(item)))
    return valid


def _references(
    notifications: Notifications,
    receivers: Sequence[tuple[int, Receiver]],
    routes: Sequence[tuple[int, Route]],
    names: set[str],
    builder: Builder,
    source: str,
    warn: Warn | None,
) -> list[str]:
    """Names given twice, routes to no receiver (``names``: those there are), the receivers'
    files that cannot be used: one line each, at its place (one that cannot be read: to
    ``warn``, if given, as a warning)."""
    problems = _twice(receivers, builder, source)
    for i, route in routes:
        if route.receiver not in names:
            line, column = nearest(builder.marks, ("routes", i, "receiver"))
            problems.append(
                f"{source}:{line}:{column}: routes[{i}].receiver: no receiver named "
                f"{route.receiver!r} (receivers: {_some(names)})"
            )
    for i, receiver in receivers:
        checks: list[tuple[str, Callable[[Receiver], object]]] = []
        if receiver.url_file is not None:
            checks.append(("urlFile", notifications.url_of))
        if receiver.secret_file is not None:
            checks.append(("secretFile", notifications.secret_of))
        for field, read in checks:
            try:
                read(receiver)
            except ValueError as exc:
                line, column = nearest(builder.marks, ("receivers", i, field))
                # The message names the field as a delivery's log line needs: here its place does.
                problem = f"receivers[{i}].{field}: {str(exc).removeprefix(f'{field}: ')}"
                if isinstance(exc, _Unreadable) and warn is not None:
                    warn(f"{source}:{line}:{column}: warning: {problem}: {_NOT_CHECKED}")
                else:
                    problems.append(f"{source}:{line}:{column}: {problem}")
    return problems


def _twice(receivers: Sequence[tuple[int, Receiver]], builder: Builder, source: str) -> list[str]:
    """A problem for each receiver whose name an earlier one has, at its own place (where an
    alias repeats a receiver, the alias)."""
    first: dict[str, int] = {}
    problems = []
    for i, receiver in receivers:
        earlier = first.setdefault(receiver.name, i)
        if earlier != i:
            line, column = nearest(builder.marks, ("receivers", i, "name"))
            problems.append(
                f"{source}:{line}:{column}: receivers[{i}].name: receiver names must be unique: "
                f"{receiver.name!r} is also the name of receivers[{earlier}]"
            )
    return problems
