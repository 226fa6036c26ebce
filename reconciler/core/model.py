"""The CronTask resource: one pydantic model, the single source of truth.

The same YAML is a file in a git repository and a Kubernetes custom resource. The JSON Schema
(`crontask schema`, `schemas/crontask.schema.json`) and the CRD's openAPIV3Schema are generated
from these classes. Defaults follow Kubernetes CronJob where a field has a CronJob twin; where
crontask differs on purpose (``concurrencyPolicy`` defaults to ``Forbid``) the README says so.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from reconciler.core.jobspec import (
    JobSpecError,
    Problem,
    label_key_problem,
    label_value_problem,
    problems,
)
from reconciler.core.runs import DNS1123_LABEL
from reconciler.core.schedule import parse_schedule, validate_time_zone
from reconciler.core.urls import request_url_problem

API_VERSION = "crontask.dev/v1alpha1"
KIND = "CronTask"
API_GROUP = "crontask.dev"

ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
MAX_ENV_NAME = 256
# Variables the runner sets for every run; a task may not override them.
RESERVED_ENV_PREFIX = "CRONTASK_"

Label = Annotated[str, StringConstraints(pattern=DNS1123_LABEL, min_length=1, max_length=63)]

# Bounds on every value, so that a careless or hostile definition cannot ask for what makes no
# sense (a deadline of 0 s skips every slot; a backoff of 1e16 s never retries) or for more
# memory than a task needs. Each says its range in the schema, the CRD and every error message.
DAY = 86_400
MAX_SECONDS = 365 * DAY  # deadlines and timeouts: a year
MAX_BACKOFF = DAY  # one retry delay: a day
MAX_HISTORY = 1_000  # run records kept per task and status
MAX_TEXT = 32 * 1024  # one argument, env value, header value: 32 KiB
MAX_ITEMS = 256  # args, env entries, headers, labels, annotations
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]


def _no_nul(value: str) -> str:
    # The kernel takes arguments, environment and paths as C strings: every run would fail.
    if "\0" in value:
        raise ValueError("contains a NUL character, which no program can be given")
    return value


# What a header value may hold, here and in the HTTP action (for values read at run time):
# printable ASCII and tabs. CR and LF would end the header (and could start another).
HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")


def _header_safe(value: str) -> str:
    if not HEADER_VALUE.fullmatch(value):
        raise ValueError(
            "holds a character no header may (CR, LF, another control character, or one that"
            " is not ASCII)"
        )
    return value


# What reaches a process (an argument, an environment value, its directory) or a header.
ProcessText = Annotated[Text, AfterValidator(_no_nul)]
HeaderText = Annotated[Text, AfterValidator(_header_safe)]
Path4K = Annotated[str, StringConstraints(max_length=4096), AfterValidator(_no_nul)]
LabelValue = Annotated[str, StringConstraints(max_length=63)]
MAX_LABEL_KEY = 317  # Kubernetes: a 253-character prefix, '/', a 63-character name


# Numbers and switches are strict: a quoted "30" or "off" in a file is an error, as the API
# server's schema makes it for a CronTask resource, and `true` is no count (pydantic's lax mode
# would read "off" as false and `limit: true` as 1). A whole number written as a float (`30.0`,
# what a JSON encoder may send) is that integer, as the API server takes it; `30.5` is not.


def _whole(value: Any) -> Any:
    """A field validator (``mode="before"``) of integer fields: keeps the JSON schema's
    ``minimum``/``maximum`` where an annotated validator would not."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


class _Model(BaseModel):
    # Unknown fields are errors: a typo such as `schedul:` must not silently become a default.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        use_enum_values=False,
        # str() of a ValidationError would quote the value, a URL with its password among
        # them; messages are worded from errors() (sources.messages), which keeps it.
        hide_input_in_errors=True,
    )

    def model_post_init(self, context: Any, /) -> None:
        # Which fields a document gave is kept per instance as a set of its own: 216 bytes,
        # five times per task, a quarter of what a task costs in memory. Instances of the
        # same shape share one set instead. Nothing adds to it: the models are frozen, and
        # model_copy(update=...) copies the set before adding to the copy.
        given = self.__pydantic_fields_set__
        shape = frozenset(given)
        shared = _FIELD_SETS.get(shape)
        if shared is None:
            shared = given
            if len(_FIELD_SETS) < _FIELD_SETS_MAX:
                _FIELD_SETS[shape] = given
        object.__setattr__(self, "__pydantic_fields_set__", shared)


# One set per shape seen (which optional fields were given); bounded, as a hostile folder
# could give every combination.
_FIELD_SETS: dict[frozenset[str], set[str]] = {}
_FIELD_SETS_MAX = 4096


class ConcurrencyPolicy(enum.StrEnum):
    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class Metadata(_Model):
    name: Label = Field(description="DNS-1123 label, unique within the namespace.")
    namespace: Label = Field("default", description="Defaults to `default`.")
    labels: dict[str, LabelValue] = Field(default_factory=dict, max_length=MAX_ITEMS)
    annotations: dict[str, Text] = Field(default_factory=dict, max_length=MAX_ITEMS)

    @field_validator("labels", "annotations")
    @classmethod
    def _keys(cls, values: dict[str, str]) -> dict[str, str]:
        # Checked here, not in the type: a CRD schema cannot constrain property names.
        for key in values:
            if not 0 < len(key) <= MAX_LABEL_KEY:
                raise ValueError(f"keys are 1 to {MAX_LABEL_KEY} characters long")
        return values


class RetryPolicy(_Model):
    limit: StrictInt = Field(0, ge=0, le=100, description="Further attempts after a failed one.")
    backoff_seconds: StrictFloat = Field(
        10.0, ge=0, le=MAX_BACKOFF, description="Delay before the first retry."
    )
    backoff_multiplier: StrictFloat = Field(
        2.0, ge=1, le=10, description="Each further delay is multiplied."
    )
    max_backoff_seconds: StrictFloat | None = Field(
        None, ge=0, le=MAX_BACKOFF, description="Upper bound on a delay."
    )

    _whole_limit = field_validator("limit", mode="before")(_whole)


class CommandAction(_Model):
    args: list[ProcessText] = Field(
        min_length=1,
        max_length=MAX_ITEMS,
        description="Program and arguments, executed directly (no shell). "
        'Use ["sh", "-c", "..."] for shell syntax.',
    )
    env: dict[str, ProcessText] = Field(
        default_factory=dict, max_length=MAX_ITEMS, description="Added to the environment."
    )
    working_dir: Path4K | None = Field(None, description="Directory the command runs in.")

    @field_validator("args")
    @classmethod
    def _program_named(cls, args: list[str]) -> list[str]:
        if not args[0].strip():
            raise ValueError("the first argument (the program) must not be empty")
        return args

    @field_validator("env", mode="before")
    @classmethod
    def _env_is_a_map(cls, env: object) -> object:
        # A Kubernetes user writes a container's list of {name, value}: say what is wanted
        # rather than pydantic's "Input should be a valid dictionary".
        if isinstance(env, list):
            raise ValueError("a map of NAME: value (not a list of {name, value} as in a Pod)")
        return env

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if len(name) > MAX_ENV_NAME:
                raise ValueError(
                    f"{name[:40]!r}... is longer than {MAX_ENV_NAME} characters (the limit for"
                    " an environment variable name)"
                )
            if not re.fullmatch(ENV_NAME, name):  # not match: "$" would let a final "\n" by
                raise ValueError(f"{name!r} is not a valid environment variable name")
            if name.startswith(RESERVED_ENV_PREFIX):
                raise ValueError(f"{name!r}: names starting with CRONTASK_ are set by crontask")
        return env


class HttpMethod(enum.StrEnum):
    GET = "GET"
    HEAD = "HEAD"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


class ValueSource(_Model):
    """Where a secret value comes from, so that it is never committed to git."""

    env: str | None = Field(
        None, max_length=256, description="An environment variable of crontask's process."
    )
    file: Path4K | None = Field(None, description="A file, e.g. a mounted Kubernetes Secret.")

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


class HttpHeader(_Model):
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


STATUS_RANGES = r"^\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*$"


class HttpAction(_Model):
    method: HttpMethod = Field(HttpMethod.GET)
    url: str = Field(
        pattern=r"^https?://[^\s/$.?#][^\s]*$",
        max_length=2048,
        description="http:// or https:// URL.",
    )
    headers: list[HttpHeader] = Field(default_factory=list, max_length=MAX_ITEMS)
    body: str | None = Field(
        None, max_length=64 * 1024, description="Request body, sent as is (at most 64 KiB)."
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

    @field_validator("url")
    @classmethod
    def _usable(cls, url: str) -> str:
        # The pattern lets through what no client can send to (a port of 99999, "h:abc", an
        # unclosed "[::1"): at run time that was an error quoting the client's repr. The
        # problem never quotes the URL's password: definition errors are logged, shown and sent.
        if (problem := request_url_problem(url)) is not None:
            raise ValueError(f"not a URL a request can go to: {problem}")
        return url

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


# Labels and annotations under this prefix are crontask's on every Job it creates.
RESERVED_JOB_PREFIX = "crontask.dev/"


def _job_label_value(value: str) -> str:
    # As the API server checks it when the Job is created: a value it refuses would fail
    # every run with a 422, so it is a definition error instead.
    if (wrong := label_value_problem(value)) is not None:
        raise ValueError(wrong)
    return value


JobLabelValue = Annotated[LabelValue, AfterValidator(_job_label_value)]


class JobMetadata(_Model):
    labels: dict[str, JobLabelValue] = Field(
        default_factory=dict, max_length=MAX_ITEMS, description="Added to every Job."
    )
    annotations: dict[str, Text] = Field(
        default_factory=dict, max_length=MAX_ITEMS, description="Added to every Job."
    )

    @field_validator("labels", "annotations")
    @classmethod
    def _keys(cls, values: dict[str, str]) -> dict[str, str]:
        found = []
        for key in values:
            if key.startswith(RESERVED_JOB_PREFIX):
                found.append(
                    Problem((key,), "Forbidden: keys under crontask.dev/ are set by crontask")
                )
            elif (wrong := label_key_problem(key)) is not None:
                found.append(Problem((key,), wrong))
        if found:
            # Each at its own key (the loader and the API report a JobSpecError's problems so).
            raise JobSpecError(found)
        return values


class JobAction(_Model):
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


class TaskSpec(_Model):
    schedule: str = Field(
        max_length=1024,
        description="5 cron fields; 6 fields = leading seconds; @hourly, @daily, ...; "
        '"@every 30s". Days also take L, L-3, 15W, LW (day of month), 5L, MON#2 (day of week) '
        "and ? (no specific value).",
    )
    time_zone: str = Field(
        "UTC", max_length=64, description="IANA time zone name, e.g. Europe/Berlin."
    )
    suspend: StrictBool = Field(False, description="No new runs while true; running ones finish.")
    concurrency_policy: ConcurrencyPolicy = Field(
        ConcurrencyPolicy.FORBID,
        description="What to do when a slot comes while the previous run is still going.",
    )
    starting_deadline_seconds: StrictInt | None = Field(
        None,
        ge=1,
        le=MAX_SECONDS,
        description="How late a slot may still start. Unset: no deadline.",
    )
    timeout_seconds: StrictInt | None = Field(
        None,
        ge=1,
        le=MAX_SECONDS,
        description="The whole run (its process group) is stopped after this.",
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    jitter_seconds: StrictInt | None = Field(
        None,
        ge=0,
        le=3600,
        description="Delay every slot by a fixed offset in [0, jitterSeconds] derived from the "
        "task's key: stable across restarts, spreads tasks that share a schedule.",
    )
    successful_runs_history_limit: StrictInt = Field(
        3, ge=0, le=MAX_HISTORY, description="Succeeded runs to keep."
    )
    failed_runs_history_limit: StrictInt = Field(
        1, ge=0, le=MAX_HISTORY, description="Failed runs to keep."
    )
    command: CommandAction | None = Field(None, description="Run a program.")
    http: HttpAction | None = Field(None, description="Make an HTTP request.")
    job: JobAction | None = Field(None, description="Create a Kubernetes Job for each run.")

    _whole_numbers = field_validator(
        "starting_deadline_seconds",
        "timeout_seconds",
        "jitter_seconds",
        "successful_runs_history_limit",
        "failed_runs_history_limit",
        mode="before",
    )(_whole)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        # Whether an expression parses does not depend on the zone. The ScheduleError travels
        # in the pydantic error's context, so the loader can point at the offending column.
        parse_schedule(value, "UTC")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        validate_time_zone(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        actions = [name for name in ACTION_FIELDS if getattr(self, name) is not None]
        if len(actions) != 1:
            found = ", ".join(actions) if actions else "none"
            raise ValueError(
                f"exactly one action is required ({' | '.join(ACTION_FIELDS)}); found {found}"
            )
        return self


ACTION_FIELDS = ("command", "http", "job")


class CronTask(_Model):
    api_version: Literal["crontask.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["CronTask"]
    metadata: Metadata
    spec: TaskSpec

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"

    def spec_hash(self) -> str:
        return spec_hash(self.spec)

    def to_document(self) -> dict[str, Any]:
        """The resource as it would be written back to YAML, defaults made explicit."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def spec_hash(spec: TaskSpec) -> str:
    """Content hash of the normalized spec: defaults made explicit, keys sorted.

    Two definitions that mean the same (``suspend: false`` written or left out) hash the same,
    so reformatting a file never restarts a job.
    """
    normal = spec.model_dump(mode="json", by_alias=True)
    return hashlib.sha256(json.dumps(normal, sort_keys=True).encode()).hexdigest()[:16]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of one CronTask document, for editors and CI."""
    schema = CronTask.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://crontask.dev/schemas/v1alpha1/crontask.schema.json",
        "title": "CronTask",
        "description": "A scheduled task declared for crontask (crontask.dev/v1alpha1).",
        **{k: v for k, v in schema.items() if k not in {"title", "description"}},
    }
