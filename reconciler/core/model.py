"""The CronTask resource: one pydantic model, the single source of truth.

The same YAML is a file in a git repository and a Kubernetes custom resource. The JSON Schema
(`crontask schema`, `schemas/crontask.schema.json`) and the CRD's openAPIV3Schema are generated
from these classes. Defaults follow Kubernetes CronJob where a field has a CronJob twin; where
crontask differs on purpose (``concurrencyPolicy`` defaults to ``Forbid``) the README says so.

A task's action (:mod:`reconciler.core.actions`) and the base model, bounds and text types every
part is made of (:mod:`reconciler.core.fields`) live in modules of their own.
"""

from __future__ import annotations

import enum
import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from reconciler.core.actions import CommandAction, HttpAction, JobAction
from reconciler.core.fields import (
    MAX_BACKOFF,
    MAX_HISTORY,
    MAX_ITEMS,
    MAX_LABEL_KEY,
    MAX_SECONDS,
    RUN_NOW_ANNOTATION,
    Label,
    LabelValue,
    Model,
    Text,
)
from reconciler.core.schedule import parse_schedule, validate_time_zone

API_VERSION = "crontask.dev/v1alpha1"
KIND = "CronTask"
API_GROUP = "crontask.dev"

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


# The fields of a command, as written: a string that starts with one and a colon is a slip.
_COMMAND_FIELDS = frozenset(f.alias or n for n, f in CommandAction.model_fields.items())


class ConcurrencyPolicy(enum.StrEnum):
    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


def _label_key(key: str) -> str:
    # Checked here, not in the type: a CRD schema cannot constrain property names. A key's own
    # check, so that each bad key is an error at its place.
    if not 0 < len(key) <= MAX_LABEL_KEY:
        raise ValueError(f"keys are 1 to {MAX_LABEL_KEY} characters long, not {len(key)}")
    return key


LabelKey = Annotated[str, AfterValidator(_label_key)]


class Metadata(Model):
    name: Label = Field(description="DNS-1123 label, unique within the namespace.")
    namespace: Label = Field("default", description="Defaults to `default`.")
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=MAX_ITEMS)
    annotations: dict[LabelKey, Text] = Field(default_factory=dict, max_length=MAX_ITEMS)

    @field_validator("annotations", mode="before")
    @classmethod
    def _without_run_now(cls, values: Any) -> Any:
        # The run-now annotation asks for a run; it is not part of the task (crontask reads it
        # from the object, and refuses a value too long there): a value of any length must not
        # make a task that is valid invalid, nor sit in its definition.
        if isinstance(values, dict) and RUN_NOW_ANNOTATION in values:
            return {k: v for k, v in values.items() if k != RUN_NOW_ANNOTATION}
        return values


class RetryPolicy(Model):
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


class TaskSpec(Model):
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

    @field_validator("command", mode="before")
    @classmethod
    def _command_is_a_map(cls, command: object) -> object:
        # A Kubernetes user writes a container's command, a list (or a string, as a crontab
        # line): say what is wanted rather than pydantic's "valid dictionary or instance of
        # CommandAction".
        wanted = "a map such as {args: [program, argument, ...]}"
        if isinstance(command, list):
            raise ValueError(
                f"{wanted} (not a list as a container's command: the list goes under args)"
            )
        if isinstance(command, str):
            field = command.partition(":")[0]
            if ":" in command and field in _COMMAND_FIELDS:  # args:[x], one YAML string
                raise ValueError(
                    f"{wanted} (not a string: write a space after the ':' of '{field}:')"
                )
            raise ValueError(
                f"{wanted} (not a string: the program and each argument are items of args, "
                "run without a shell)"
            )
        return command

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


class CronTask(Model):
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


def retry_hash(spec: TaskSpec) -> str:
    """Content hash of what a run's retries hold to: the spec but ``suspend`` (a CronJob's
    suspend stops new Jobs, not the retries of those running). A change of any other field
    cancels the retries of the task's runs, seen while they go on or after a restart (a Job
    says the hash it was made from). Defaults are left out, so a field a newer crontask reads,
    at its default, is no change."""
    normal = spec.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude={"suspend"})
    return hashlib.sha256(json.dumps(normal, sort_keys=True).encode()).hexdigest()[:16]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of one CronTask document, for editors and CI."""
    schema = CronTask.model_json_schema(by_alias=True)
    for node in [schema, *schema.get("$defs", {}).values()]:
        _nullable_when_optional(node)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://crontask.dev/schemas/v1alpha1/crontask.schema.json",
        "title": "CronTask",
        "description": "A scheduled task declared for crontask (crontask.dev/v1alpha1).",
        **{k: v for k, v in schema.items() if k not in {"title", "description"}},
    }


def _nullable_when_optional(node: dict[str, Any]) -> None:
    """Lets each field of the object ``node`` that may be left out be null, as the model
    takes it (``core.fields``: the default applies). The CRD's conversion makes such a field
    plain again: the API server prunes the null."""
    required = set(node.get("required", ()))
    properties: dict[str, Any] = node.get("properties", {})
    for name, field in properties.items():
        if name in required or {"type": "null"} in field.get("anyOf", ()):
            continue
        said = {k: field.pop(k) for k in ("default", "description", "title") if k in field}
        properties[name] = {"anyOf": [field, {"type": "null"}], **said}


def label_slip(value: str) -> str:
    """What the message of a name that is no DNS-1123 label adds when a character of it shows
    as one it is not (a Cyrillic a, U+0430, for a Latin one): the first printable character
    outside ASCII, by code point and place, `` (U+0430 at character 9)``; else nothing (ASCII
    shows as itself, and a message escapes a character that does not print: ``\\xa0``)."""
    for place, char in enumerate(value, 1):
        if not char.isascii() and char.isprintable():
            return f" (U+{ord(char):04X} at character {place})"
    return ""
