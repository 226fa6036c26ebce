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
Reading is bounded: the file at most 256 KiB, at most 10 000 values, 50 receivers, 200 routes.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import httpx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic import model_validator as _model_validator
from pydantic.alias_generators import to_camel

from reconciler.core.desired import SourceKind
from reconciler.core.fields import Label
from reconciler.core.runs import DNS1123_LABEL
from reconciler.secretfile import read_secret_file

MAX_FILE_BYTES: Final = 256 * 1024
MAX_VALUES: Final = 10_000
MAX_DEPTH: Final = 20
MAX_URL: Final = 2048
MAX_SECRET_BYTES: Final = 4096
MIN_REPEAT: Final = 1.0
MAX_REPEAT: Final = 366 * 86400.0
# At most 12 digits a unit (366d is 31622400s: 8): no sum of such overflows a float.
_DURATION: Final = re.compile(r"^(?:(\d{1,12})d)?(?:(\d{1,12})h)?(?:(\d{1,12})m)?(?:(\d{1,12})s)?$")


class Event(enum.StrEnum):
    FAILED = "failed"  # ok -> failing (the first failure; reminders while it lasts)
    RECOVERED = "recovered"  # failing -> ok
    DEFINITION_ERROR = "definitionError"  # a new definition error or conflict
    EVERY_FAILURE = "everyFailure"  # every run that ends failing


class NotificationConfigError(ValueError):
    """The file cannot be used; each line of the message is ``file:line:col: problem``."""


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
            check_url(value)
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

    @field_validator("name")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        # A task's name is lower case (DNS-1123): a capital outside a [set] matches no task.
        outside = re.sub(r"\[[^]]*\]", "", value or "")
        if outside != outside.lower():
            raise ValueError(f"task names are lower case: {value!r} can match none")
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


class NotificationConfig(_Config):
    # Names unique and routes to receivers that exist: checked by parse (_check_references),
    # which knows where each receiver is written; a check here could only say "(top level)".
    receivers: list[Receiver] = Field(min_length=1, max_length=50)
    routes: list[Route] = Field(min_length=1, max_length=200)


@dataclasses.dataclass(frozen=True)
class Notifications:
    """A checked file: the config, and where relative paths start."""

    config: NotificationConfig
    base: Path

    def path(self, value: Path) -> Path:
        return value if value.is_absolute() else self.base / value

    def url_of(self, receiver: Receiver) -> str:
        """The receiver's URL (read from ``urlFile`` now). ValueError if it is unusable; the
        message never contains the URL."""
        if receiver.url is not None:
            return receiver.url
        assert receiver.url_file is not None
        url = _read_small(self.path(receiver.url_file), "urlFile").decode().strip()
        check_url(url)
        return url

    def secret_of(self, receiver: Receiver) -> bytes:
        assert receiver.secret_file is not None
        secret = _read_small(self.path(receiver.secret_file), "secretFile").strip()
        if not secret:
            raise ValueError("secretFile is empty")
        return secret


def check_url(url: str) -> None:
    """ValueError unless ``url`` is an http(s) URL of bounded length that httpx can send to
    (a host, a port in 1-65535). The message does not repeat the URL: a webhook's URL is
    often its secret (Slack's are)."""
    if len(url) > MAX_URL:
        raise ValueError(f"the URL is longer than {MAX_URL} characters")
    # The scheme is case-insensitive (RFC 3986 §3.1): httpx sends HTTPS://h/ as https://h/.
    if not re.match(r"^https?://[^\s/?#]+", url, re.IGNORECASE) or any(c.isspace() for c in url):
        raise ValueError("the URL must start with http:// or https:// and hold no spaces")
    # What the regular expression lets through may still be no URL to httpx (``[::1``,
    # ``h:abc``) or one it fails on only when sending (``h:99999``): refused here, where the
    # error has a place, not at each delivery. httpx's own message quotes the URL: not kept.
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        raise ValueError("the URL is not valid (its host or port cannot be read)") from None
    if not parsed.host:
        raise ValueError("the URL has no host")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise ValueError("the URL's port must be between 1 and 65535")


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


def _read_small(path: Path, what: str) -> bytes:
    try:
        return read_secret_file(path, MAX_SECRET_BYTES)
    except ValueError as err:
        raise ValueError(f"{what}: cannot read {path}: {err}") from None


# -- reading, with positions ----------------------------------------------------------------------


Mark = tuple[int, int]  # 1-based line and column
# Where an alias (``*a``) stands: (id of the collection node holding it, its index in a
# sequence or the id of its key node in a mapping) -> the alias's mark.
Aliases = dict[tuple[int, int], Mark]


class _Loader(yaml.SafeLoader):
    """The safe loader, remembering where each alias stands: PyYAML composes ``*a`` into the
    anchored node itself, whose marks are the anchor's, so an error in the value an alias
    repeats (a receiver listed twice as ``- *r``) would point at the first occurrence."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases: Aliases = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if parent is not None and index is not None and self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            where = index if isinstance(index, int) else id(index)
            self.aliases[(id(parent), where)] = (mark.line + 1, mark.column + 1)
        return super().compose_node(parent, index)


class _Builder:
    """Plain data from a YAML node graph, with the mark of each value by its path; bounded
    in values (aliases counted each time they are used) and depth. What an alias repeats is
    marked where the alias stands: that is the place of that occurrence."""

    def __init__(self, aliases: Aliases | None = None) -> None:
        self.marks: dict[tuple[str | int, ...], Mark] = {}
        self.key_marks: dict[tuple[str | int, ...], Mark] = {}
        self.values = 0
        self._aliases = aliases or {}
        self._scalars = yaml.constructor.SafeConstructor()

    def build(
        self, node: yaml.Node, path: tuple[str | int, ...] = (), alias: Mark | None = None
    ) -> Any:
        self.values += 1
        mark = alias or _mark(node)
        if self.values > MAX_VALUES or len(path) > MAX_DEPTH:
            raise NotificationConfigError(f"{_at(mark)}: the file is too large or too deep")
        self.marks[path] = mark
        if isinstance(node, yaml.MappingNode):
            data: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key_mark = alias or _mark(key_node)
                if not isinstance(key_node, yaml.ScalarNode):
                    raise NotificationConfigError(f"{_at(key_mark)}: a key must be a string")
                key = str(key_node.value)
                self.key_marks[(*path, key)] = key_mark
                if key in data:
                    raise NotificationConfigError(f"{_at(key_mark)}: {key!r} is given twice")
                used = alias or self._aliases.get((id(node), id(key_node)))
                data[key] = self.build(value_node, (*path, key), used)
            return data
        if isinstance(node, yaml.SequenceNode):
            return [
                self.build(item, (*path, i), alias or self._aliases.get((id(node), i)))
                for i, item in enumerate(node.value)
            ]
        assert isinstance(node, yaml.ScalarNode)
        try:
            return self._scalars.construct_object(node)
        except yaml.YAMLError:
            raise NotificationConfigError(
                f"{_at(mark)}: not a plain YAML value (tags are not read)"
            ) from None
        except (ValueError, OverflowError):
            # PyYAML's own constructors fail so, on a number of more than 4 300 digits or a
            # date that does not exist (2026-13-01); their messages are Python's, not ours.
            problem = _UNREADABLE.get(node.tag, "a value that cannot be read")
            raise NotificationConfigError(
                f"{_at(mark)}: {_dotted(path) or '(top level)'}: {problem}"
            ) from None


_UNREADABLE: Final = {
    "tag:yaml.org,2002:int": "a number too long to read",
    "tag:yaml.org,2002:timestamp": "a date that does not exist",
}


def _mark(node: yaml.Node) -> Mark:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _at(mark: Mark) -> str:
    return f"{mark[0]}:{mark[1]}"


def load(path: str | Path) -> Notifications:
    """Read and check the file; :class:`NotificationConfigError` lists every problem as
    ``file:line:col: field: message``. The files it names must be readable."""
    path = Path(path)
    try:
        # A regular file only, opened without waiting: a FIFO would hold start-up until a
        # writer came, and a device such as /dev/zero never ends.
        raw = read_secret_file(path, MAX_FILE_BYTES)
    except ValueError as exc:
        raise NotificationConfigError(f"{path}: {exc}") from None
    return parse(raw.decode("utf-8", "replace"), str(path), path.parent)


def parse(text: str, source: str, base: Path) -> Notifications:
    try:
        _check_depth(text, source)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except RecursionError:  # _check_depth should make this impossible: still no traceback
        raise NotificationConfigError(f"{source}:1:1: the file is too large or too deep") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.line + 1}:{mark.column + 1}" if mark else "1:1"
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise NotificationConfigError(f"{source}:{where}: {problem}") from None
    if node is None:
        raise NotificationConfigError(f"{source}:1:1: the file is empty")
    builder = _Builder(loader.aliases)
    try:
        data = builder.build(node)
    except NotificationConfigError as exc:
        raise NotificationConfigError(f"{source}:{exc}") from None
    try:
        config = NotificationConfig.model_validate(data)
    except ValidationError as exc:
        raise NotificationConfigError(_describe(exc, builder, source)) from None
    notifications = Notifications(config, base)
    _check_references(notifications, builder, source)
    return notifications


def _check_depth(text: str, source: str) -> None:
    """NotificationConfigError at the first collection nested deeper than the builder reads.
    PyYAML composes nodes recursively, so 5 000 nested ``[`` would end in a RecursionError;
    its parser keeps a stack of its own, so its events can be counted first."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH + 1:  # the builder refuses what lies deeper anyway
                mark = event.start_mark
                where = f"{mark.line + 1}:{mark.column + 1}" if mark else "1:1"
                raise NotificationConfigError(
                    f"{source}:{where}: the file is too large or too deep"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _describe(exc: ValidationError, builder: _Builder, source: str) -> str:
    lines = []
    for error in exc.errors(include_url=False)[:20]:
        loc = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
        loc = _model_path(loc)
        if error["type"] == "extra_forbidden":
            line, column = builder.key_marks.get(loc) or _nearest(builder.marks, loc)
            message = f"unknown field {str(loc[-1])!r}"
        else:
            line, column = _nearest(builder.marks, loc)
            message = _message(error)
        where = _dotted(loc) or "(top level)"
        lines.append(f"{source}:{line}:{column}: {where}: {message}")
    return "\n".join(lines)


def _message(error: Any) -> str:
    if error["type"] == "string_pattern_mismatch" and error["ctx"]["pattern"] == DNS1123_LABEL:
        shown = str(error["input"])[:63]
        return (
            f"{shown!r} is not a DNS-1123 label (lower-case letters, digits and '-', starting "
            "and ending with a letter or digit), as every task's namespace is: it would match "
            "no task"
        )
    return str(error["msg"]).removeprefix("Value error, ")


def _model_path(loc: Sequence[str | int]) -> tuple[str | int, ...]:
    # Literal and enum unions add their own step to a location (``type.literal[...]``).
    return tuple(p for p in loc if not (isinstance(p, str) and "[" in p))


def _nearest(marks: dict[tuple[str | int, ...], Mark], loc: tuple[str | int, ...]) -> Mark:
    for end in range(len(loc), -1, -1):
        if loc[:end] in marks:
            return marks[loc[:end]]
    return (1, 1)


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _check_references(notifications: Notifications, builder: _Builder, source: str) -> None:
    config = notifications.config
    names = {r.name for r in config.receivers}
    problems = _twice(config.receivers, builder, source)
    for i, route in enumerate(config.routes):
        if route.receiver not in names:
            line, column = _nearest(builder.marks, ("routes", i, "receiver"))
            problems.append(
                f"{source}:{line}:{column}: routes[{i}].receiver: no receiver named "
                f"{route.receiver!r} (receivers: {', '.join(sorted(names))})"
            )
    for i, receiver in enumerate(config.receivers):
        checks: list[tuple[str, Callable[[Receiver], object]]] = []
        if receiver.url_file is not None:
            checks.append(("urlFile", notifications.url_of))
        if receiver.secret_file is not None:
            checks.append(("secretFile", notifications.secret_of))
        for field, read in checks:
            try:
                read(receiver)
            except ValueError as exc:
                line, column = _nearest(builder.marks, ("receivers", i, field))
                problems.append(f"{source}:{line}:{column}: receivers[{i}].{field}: {exc}")
    if problems:
        raise NotificationConfigError("\n".join(problems))


def _twice(receivers: Sequence[Receiver], builder: _Builder, source: str) -> list[str]:
    """A problem for each receiver whose name an earlier one has, at its own place (where an
    alias repeats a receiver, the alias)."""
    first: dict[str, int] = {}
    problems = []
    for i, receiver in enumerate(receivers):
        earlier = first.setdefault(receiver.name, i)
        if earlier != i:
            line, column = _nearest(builder.marks, ("receivers", i, "name"))
            problems.append(
                f"{source}:{line}:{column}: receivers[{i}].name: receiver names must be unique: "
                f"{receiver.name!r} is also the name of receivers[{earlier}]"
            )
    return problems
