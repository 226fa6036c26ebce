"""``GET /api/v1/namespaces/NS/pods/NAME/log``: the options of ``PodLogOptions`` (container,
previous, tailLines, limitBytes, sinceSeconds, sinceTime, timestamps, follow) and how the
kubelet applies them to a container's log: since, then the last lines, then the byte limit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from threading import Event

from . import errors
from .errors import ApiError, FieldError
from .processes import LogBuffer, rfc3339_nano
from .timefmt import parse_time

_MAX = 2**31 - 1


@dataclass(frozen=True)
class LogOptions:
    container: str | None = None
    previous: bool = False
    follow: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since: datetime | None = None


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true")


def _integer(params: dict[str, str], name: str, least: int, found: list[FieldError]) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError as e:
        raise errors.bad_request(f"couldn't parse {name} {raw!r}: not an integer") from e
    if value < least or value > _MAX:
        found.append(errors.invalid_value(name, value, f"must be greater than or equal to {least}"))
    return value


def parse(params: dict[str, str]) -> LogOptions:
    """The options of a log request; 400 for what does not parse, 422 for what is invalid."""
    found: list[FieldError] = []
    tail = _integer(params, "tailLines", 0, found)
    limit = _integer(params, "limitBytes", 1, found)
    since_seconds = _integer(params, "sinceSeconds", 1, found)
    since: datetime | None = None
    if params.get("sinceTime"):
        try:
            since = parse_time(params["sinceTime"])
        except ValueError as e:
            raise errors.bad_request(f"couldn't parse sinceTime {params['sinceTime']!r}") from e
    if since_seconds is not None and since is not None:
        found.append(
            errors.forbidden(
                "sinceTime", "at most one of `sinceTime` or `sinceSeconds` may be specified"
            )
        )
    if found:
        raise errors.invalid_fields("PodLogOptions", "", "", found)
    if since_seconds is not None:
        since = datetime.now(UTC) - timedelta(seconds=since_seconds)
    return LogOptions(
        container=params.get("container") or None,
        previous=_flag(params.get("previous")),
        follow=_flag(params.get("follow")),
        timestamps=_flag(params.get("timestamps")),
        tail_lines=tail,
        limit_bytes=limit,
        since=since,
    )


def _format(entries: list[tuple[datetime, bytes]], options: LogOptions) -> bytes:
    if not options.timestamps:
        return b"".join(line for _, line in entries)
    return b"".join(rfc3339_nano(at).encode() + b" " + line for at, line in entries)


def render(log: LogBuffer, options: LogOptions) -> bytes:
    """The log as one body (no follow)."""
    entries = log.entries()
    if options.since is not None:
        entries = [e for e in entries if e[0] >= options.since]
    if options.tail_lines is not None:
        entries = entries[len(entries) - options.tail_lines :] if options.tail_lines else []
    out = _format(entries, options)
    return out[: options.limit_bytes] if options.limit_bytes else out


def stream(log: LogBuffer, options: LogOptions, stop: Event) -> Iterator[bytes]:
    """``follow=true``: what is there now (as ``render``), then each new line until the run
    ends; ``limitBytes`` bounds the whole stream."""
    left = options.limit_bytes
    start = log.end
    first = render(log, LogOptions(**{**options.__dict__, "limit_bytes": None}))
    for chunk in [first] if first else []:
        piece = chunk[:left] if left is not None else chunk
        yield piece
        if left is not None:
            left -= len(piece)
            if left <= 0:
                return
    for batch in log.follow(start, stop):
        piece = _format(batch, options)
        if left is not None:
            piece = piece[:left]
            left -= len(piece)
        if piece:
            yield piece
        if left is not None and left <= 0:
            return


def waiting_error(container: str, pod: str, reason: str) -> ApiError:
    """The 400 the real server answers for a container that has not started."""
    text = {
        "ImagePullBackOff": "trying and failing to pull image",
        "ErrImagePull": "image can't be pulled",
    }.get(reason, reason)
    return errors.bad_request(f'container "{container}" in pod "{pod}" is waiting to start: {text}')
