"""What a run does: a task's one action, a program (``CommandAction``), an HTTP request
(``HttpAction``) or a Kubernetes Job (``JobAction``).

Each is checked as what carries it out would check it: the kernel (arguments, environment and
paths as C strings), the HTTP client (a header's characters, the body's framing, a URL it can
send to) and the API server (a Job's labels, its JobSpec). A definition that could never run is
an error when it is read, not a failure of every run.
"""

from __future__ import annotations

import enum
import re
import urllib.parse
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    StrictFloat,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from reconciler.core.fields import MAX_ITEMS, Label, LabelValue, Model, Text, not_blank
from reconciler.core.http_status import STATUS_RANGES, dead_statuses
from reconciler.core.jobspec import (
    CRONTASK_JOB_ANNOTATIONS,
    MAX_ANNOTATIONS_BYTES,
    JobSpecError,
    Problem,
    annotations_size_problem,
    label_key_problem,
    label_value_problem,
    problems,
)
from reconciler.core.urls import ENCODE_USERINFO, request_url_problem

if TYPE_CHECKING:  # the definition holds its task, whose spec holds the action
    from reconciler.core.desired import Definition

ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
MAX_ENV_NAME = 256
# Variables the runner sets for every run; a task may not override them.
RESERVED_ENV_PREFIX = "CRONTASK_"


def _no_nul(value: str) -> str:
    # The kernel takes arguments, environment and paths as C strings: every run would fail.
    if "\0" in value:
        raise ValueError("contains a NUL character, which no program can be given")
    return value


# What a header value may hold, here and in the HTTP action (for values read at run time):
# printable ASCII, spaces and tabs but not at an end (RFC 9110 5.5); a CR or LF ends a header.
HEADER_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?)?")


def _header_safe(value: str, info: ValidationInfo) -> str:
    if not HEADER_VALUE.fullmatch(value.strip(" \t")):
        raise ValueError(
            "holds a character no header may (CR, LF, another control character, or one that"
            " is not ASCII)"
        )
    if value != value.strip(" \t"):  # named, not quoted: a space at a value's end is unseen
        name = info.data.get("name", "")
        raise ValueError(f"header {name!r}: its value may not start or end with a space or tab")
    return value


# What reaches a process (an argument, an environment value, its directory) or a header.
ProcessText = Annotated[Text, AfterValidator(_no_nul)]
HeaderText = Annotated[Text, AfterValidator(_header_safe)]
Path4K = Annotated[str, StringConstraints(max_length=4096), AfterValidator(_no_nul)]


# What Linux gives a program it starts: each argument or ``NAME=value``, its NUL included, at
# most MAX_ARG_STRLEN (128 KiB); all of them with their pointers at most a quarter of the stack
# limit (2 MiB by default), crontask's own environment among them. Past either every run would
# fail to start ("Argument list too long"): a definition error instead. (Between the limit and
# the limit less crontask's environment, a run fails to start and says so.)
MAX_EXEC_STRING = 128 * 1024
MAX_EXEC_BYTES = 2 * 1024 * 1024
_POINTER = 8


def _exec_bytes(text: str) -> int:
    # As the kernel counts it: the UTF-8 bytes and the NUL (surrogatepass: never raise here).
    return len(text.encode("utf-8", "surrogatepass")) + 1


def _env_name(name: str) -> str:
    # A key's own check: each bad name is an error at its key, which the error's place names.
    if len(name) > MAX_ENV_NAME:
        raise ValueError(
            f"longer than {MAX_ENV_NAME} characters (the limit for an environment variable name)"
        )
    if not re.fullmatch(ENV_NAME, name):  # not match: "$" would let a final "\n" by
        raise ValueError(
            "not a valid environment variable name: letters, digits and '_', "
            "not starting with a digit"
        )
    if name.startswith(RESERVED_ENV_PREFIX):
        raise ValueError("names starting with CRONTASK_ are set by crontask: choose another")
    return name


EnvName = Annotated[str, AfterValidator(_env_name)]


class CommandAction(Model):
    args: list[ProcessText] = Field(
        min_length=1,
        max_length=MAX_ITEMS,
        description="Program and arguments, executed directly (no shell). "
        'Use ["sh", "-c", "..."] for shell syntax.',
    )
    env: dict[EnvName, ProcessText] = Field(
        default_factory=dict, max_length=MAX_ITEMS, description="Added to the environment."
    )
    working_dir: Path4K | None = Field(
        None, min_length=1, description="Directory the command runs in."
    )

    @field_validator("args")
    @classmethod
    def _program_named(cls, args: list[str]) -> list[str]:
        if not args[0].strip():
            raise ValueError("the first argument (the program) must not be empty")
        return args

    # "" is no folder: every run failed to start.
    _working_dir_named = field_validator("working_dir", mode="before")(
        not_blank("leave it out to run in crontask's folder")
    )

    @field_validator("env", mode="before")
    @classmethod
    def _env_is_a_map(cls, env: object) -> object:
        # A Kubernetes user writes a container's list of {name, value}: say what is wanted
        # rather than pydantic's "Input should be a valid dictionary".
        if isinstance(env, list):
            raise ValueError("a map of NAME: value (not a list of {name, value} as in a Pod)")
        return env

    @model_validator(mode="after")
    def _startable(self) -> CommandAction:
        strings: list[tuple[tuple[str | int, ...], str, str]] = [
            (("args", i), "this argument", arg) for i, arg in enumerate(self.args)
        ]
        strings += [
            (("env", name), "this entry (name=value)", f"{name}={value}")
            for name, value in self.env.items()
        ]
        total = 0
        for where, what, text in strings:
            size = _exec_bytes(text)
            if size > MAX_EXEC_STRING:
                # At the argument or the entry itself (the loader and the API place a
                # JobSpecError's problems so), not at the command's start.
                reason = (
                    f"{what} is {size - 1} bytes in UTF-8, more than the {MAX_EXEC_STRING - 1}"
                    " the kernel gives a program in one argument or environment entry"
                )
                raise JobSpecError([Problem(where, reason)])
            total += size + _POINTER
        if total > MAX_EXEC_BYTES:
            raise ValueError(
                f"its arguments and environment come to {total} bytes, more than "
                f"{MAX_EXEC_BYTES}, all that Linux gives a program by default (crontask's "
                "own environment comes on top)"
            )
        return self


class HttpMethod(enum.StrEnum):
    GET = "GET"
    HEAD = "HEAD"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


class ValueSource(Model):
    """Where a secret value comes from, so that it is never committed to git."""

    env: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="An environment variable of crontask's process.",
    )
    file: Path4K | None = Field(
        None, min_length=1, description="A file, e.g. a mounted Kubernetes Secret."
    )

    # "" names no variable and no file: every run failed.
    _env_named = field_validator("env", mode="before")(
        not_blank("name the environment variable the header's value is read from")
    )
    _file_named = field_validator("file", mode="before")(
        not_blank("name the file the header's value is read from")
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ValueSource:
        if (self.env is None) == (self.file is None):
            raise ValueError("valueFrom needs exactly one of env, file")
        return self


# The client frames the body itself, with a Content-Length from ``body``: a Transfer-Encoding a
# task set, or a Content-Length that disagrees with the body, makes a request the client refuses
# once it is half sent (HttpAction checks the latter). Host is allowed: it frames nothing, and
# naming a virtual host at an address is a use of its own.
FRAMING_HEADERS = frozenset({"transfer-encoding"})


class HttpHeader(Model):
    name: str = Field(
        pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", max_length=256, description="Header name."
    )
    value: HeaderText | None = Field(None, description="A literal value.")
    value_from: ValueSource | None = Field(None, description="Or read it at run time.")

    @field_validator("name")
    @classmethod
    def _not_framing(cls, name: str) -> str:
        if name.lower() in FRAMING_HEADERS:
            raise ValueError(f"{name} is set by crontask from the body; a task may not set it")
        return name

    @model_validator(mode="after")
    def _exactly_one(self) -> HttpHeader:
        if (self.value is None) == (self.value_from is None):
            raise ValueError(f"header {self.name!r} needs exactly one of value, valueFrom")
        return self


# ${NAME}, $NAME, {name}: what a shell, Compose or a template would fill in. Nothing does here:
# the URL is sent as written.
_PLACEHOLDER = re.compile(r"[${}]")
# A user name or password that is a placeholder and nothing else: a password may hold a `$`,
# but one written whole as ``${NAME}`` is a secret meant to be filled in (each run a 401).
_WHOLE_PLACEHOLDER = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_SCHEME = re.compile(r"[^:/?#]*")
# Headers a request has once, never a list (as Accept or Cookie may be): each one listed is
# sent, so two are a warning, with what the request then does.
_ONCE = {
    "Host": "a request has one Host, so every run fails",
    "Authorization": "each is sent, and a receiver may take either or refuse the request",
}


def _first(text: str, characters: str) -> int:
    """The index of the first of ``characters`` in ``text`` (its length: none is)."""
    return min((i for i in map(text.find, characters) if i >= 0), default=len(text))


def _placeholder_problem(url: str) -> str | None:
    """Why ``url``'s scheme, host, port or credentials are none a request can go to because
    they hold ``$``, ``{`` or ``}`` (None: none do), without quoting the URL. Such a host was
    sent as written and failed each run's lookup (``x${a}.example``); ``http://${HOST}/`` met
    the pattern's words only. The parts are found as urlsplit finds them (the authority ends at
    the first ``/``, ``?`` or ``#``; the host follows its last ``@``). A user name or password
    is refused only when it is a ``${NAME}`` whole (a password may hold a ``$``); the path and
    the query are sent as written too (OData's ``?$filter=``)."""
    scheme = _SCHEME.match(url)
    assert scheme is not None  # the pattern matches the empty string
    part = "scheme" if _PLACEHOLDER.search(scheme.group()) else None
    rest, hint = url[scheme.end() :], ""
    if part is None and rest.startswith("://"):
        tail = rest[3:]
        end = _first(tail, "/?#")
        userinfo, _, hostport = tail[:end].rpartition("@")
        if hostport.startswith("["):
            host, _, port = hostport[1:].partition("]")
        else:
            host, _, port = hostport.partition(":")
        part = "host" if _PLACEHOLDER.search(host) else None
        part = part or ("port" if _PLACEHOLDER.search(port) else None)
        if part is None and any(map(_WHOLE_PLACEHOLDER.fullmatch, userinfo.split(":", 1))):
            part = "user name or password"
        after = tail[end:]
        if "@" in after[: _first(after, "?#")]:
            # What urlsplit took for the host or port may be a password's start: say how to
            # write one, as request_url_problem does.
            hint = f" ({ENCODE_USERINFO})"
    if part is None:
        return None
    return (
        f"the URL's {part} holds '$', '{{' or '}}': environment variables are not expanded in "
        "a url, it is sent as written; write it in full (a secret goes in a header's "
        f"valueFrom){hint}"
    )


class HttpAction(Model):
    method: HttpMethod = Field(HttpMethod.GET)
    url: str = Field(
        pattern=r"^https?://[^\s/$.?#][^\s]*$",
        max_length=2048,
        description="http:// or https:// URL.",
    )
    headers: list[HttpHeader] = Field(default_factory=list, max_length=MAX_ITEMS)
    body: str | None = Field(
        None,
        max_length=64 * 1024,
        description="Request body, sent as is (at most 65 536 characters).",
    )
    expect_status: str = Field(
        "200-299",
        pattern=STATUS_RANGES,
        max_length=256,
        description='Statuses that count as success: "200-299", "200,204", "200-299,304".',
    )
    timeout_seconds: StrictFloat = Field(
        30.0, gt=0, le=3600, description="For the request itself (at most an hour)."
    )

    @field_validator("url", mode="before")
    @classmethod
    def _no_placeholder(cls, url: Any) -> Any:
        # Before the pattern, whose words ("should match '^https?://...'") say nothing of it.
        if isinstance(url, str) and (problem := _placeholder_problem(url)) is not None:
            raise ValueError(problem)
        return url

    @field_validator("url")
    @classmethod
    def _usable(cls, url: str) -> str:
        # The pattern lets through what no client can send to (a port of 99999, "h:abc", an
        # unclosed "[::1"): at run time that was an error quoting the client's repr. The
        # problem never quotes the URL's password: definition errors are logged, shown and sent.
        if (problem := request_url_problem(url)) is not None:
            raise ValueError(f"not a URL a request can go to: {problem}")
        return url

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, ranges: str) -> str:
        # Refused only when no part matches a status (every run would fail); a dead part beside
        # live ones is a warning (``doubts``): such files were read before, and a file is
        # applied whole, so a refusal stopped every task of it.
        dead = dead_statuses(ranges)
        if len(dead) == ranges.count(",") + 1:
            either = " (no other part matches one either)" if len(dead) > 1 else ""
            raise ValueError(dead[0] + either)
        return ranges

    def doubts(self) -> list[str]:
        """What this action says that does not do what it seems, for warnings (validate prints
        them, ``crontask run`` logs them): parts of ``expectStatus`` that match no status
        beside those that do, the URL's user name or password beside an Authorization header,
        which the client sends as Basic credentials in place of the header's, a HEAD with a
        body, and a header a request has once listed twice (``_ONCE``)."""
        said = [
            f"expectStatus {self.expect_status!r}: {why}"
            for why in dead_statuses(self.expect_status)
        ]
        url = urllib.parse.urlsplit(self.url)
        if url.username or url.password:
            said += [
                f"the url's user name or password are sent as Basic credentials: the header "
                f"{header.name!r} is not sent (keep one of them)"
                for header in self.headers
                if header.name.lower() == "authorization"
            ]
        if self.method is HttpMethod.HEAD and self.body is not None:
            said.append("method HEAD with a body: it is sent, and a server may refuse it")
        names = [header.name.lower() for header in self.headers]
        said += [
            f"the header {name!r} is given {names.count(name.lower())} times: {why} (keep one)"
            for name, why in _ONCE.items()
            if names.count(name.lower()) > 1
        ]
        return said

    @model_validator(mode="after")
    def _length_of_the_body(self) -> HttpAction:
        length = len(self.body.encode()) if self.body is not None else 0
        for header in self.headers:
            if header.name.lower() != "content-length":
                continue
            if header.value is None or header.value.strip() != str(length):
                raise ValueError(
                    f"a Content-Length header must be the body's length, {length} bytes "
                    "(crontask sets it: the header may be left out)"
                )
        return self

    def accepts(self, status: int) -> bool:
        for part in self.expect_status.split(","):
            low, _, high = part.partition("-")
            if int(low) <= status <= int(high or low):
                return True
        return False


def http_warnings(definition: Definition) -> list[str]:
    """The warning lines ``crontask validate`` prints for an http task whose action says what
    it does not do (``HttpAction.doubts``)."""
    http = definition.task.spec.http
    doubts = [] if http is None else http.doubts()
    return [f"{definition.location}: warning: {definition.key}: http {d}" for d in doubts]


# Labels and annotations under this prefix are crontask's on every Job it creates.
RESERVED_JOB_PREFIX = "crontask.dev/"


def _job_label_value(value: str) -> str:
    # As the API server checks it when the Job is created: a value it refuses would fail
    # every run with a 422, so it is a definition error instead.
    if (wrong := label_value_problem(value)) is not None:
        raise ValueError(wrong)
    return value


JobLabelValue = Annotated[LabelValue, AfterValidator(_job_label_value)]


class JobMetadata(Model):
    labels: dict[str, JobLabelValue] = Field(
        default_factory=dict, max_length=MAX_ITEMS, description="Added to every Job."
    )
    annotations: dict[str, Text] = Field(
        default_factory=dict, max_length=MAX_ITEMS, description="Added to every Job."
    )

    @field_validator("labels", "annotations")
    @classmethod
    def _keys(cls, values: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        found = []
        for key in values:
            if key.startswith(RESERVED_JOB_PREFIX):
                found.append(
                    Problem((key,), "Forbidden: keys under crontask.dev/ are set by crontask")
                )
            elif (wrong := label_key_problem(key)) is not None:
                found.append(Problem((key,), wrong))
        # 256 entries of 32 KiB pass each bound and not the API server's on the whole.
        size = _annotations_problem(values) if info.field_name == "annotations" else None
        if not found and size is not None:
            found.append(Problem((), size))
        if found:
            # Each at its own key (the loader and the API report a JobSpecError's problems so).
            raise JobSpecError(found)
        return values


def _annotations_problem(annotations: dict[str, str]) -> str | None:
    # A Job's own, beside those crontask adds to it: together within the server's bound.
    limit = MAX_ANNOTATIONS_BYTES - CRONTASK_JOB_ANNOTATIONS
    return annotations_size_problem(annotations, limit, " (crontask adds its own to each Job)")


class JobAction(Model):
    namespace: Label | None = Field(
        None,
        description="Where the Jobs of a task from a folder, git or the API go (default: "
        "--job-namespace). A CronTask resource's Jobs always go to its own namespace.",
    )
    metadata: JobMetadata = Field(
        default_factory=JobMetadata, description="Labels and annotations of every Job."
    )
    spec: dict[str, Any] = Field(
        description="A batch/v1 JobSpec, as in a CronJob's jobTemplate.spec. crontask checks it "
        "against the Kubernetes 1.32 schema; restartPolicy defaults to Never and "
        "activeDeadlineSeconds to timeoutSeconds."
    )

    @field_validator("spec")
    @classmethod
    def _job_spec(cls, spec: dict[str, Any]) -> dict[str, Any]:
        found = problems(spec)
        if found:
            raise JobSpecError(found)
        return spec
