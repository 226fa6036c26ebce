"""The vocabulary every part of a CronTask is written in: the base model, the bounds on every
value, and the types of labels and text. Pure.

The resource (:mod:`reconciler.core.model`) and its actions (:mod:`reconciler.core.actions`) are
made of these, so that a bound holds alike wherever a value of its kind appears.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from reconciler.core.runs import DNS1123_LABEL

Label = Annotated[str, StringConstraints(pattern=DNS1123_LABEL, min_length=1, max_length=63)]

# Bounds on every value, so that a careless or hostile definition cannot ask for what makes no
# sense (a deadline of 0 s skips every slot; a backoff of 1e16 s never retries) or for more
# memory than a task needs. Each says its range in the schema, the CRD and every error message.
DAY = 86_400
MAX_SECONDS = 365 * DAY  # deadlines and timeouts: a year
MAX_BACKOFF = DAY  # one retry delay: a day
MAX_HISTORY = 1_000  # run records kept per task and status
MAX_TEXT = 32 * 1024  # one argument, env value, header value: 32 768 characters
MAX_ITEMS = 256  # args, env entries, headers, labels, annotations
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
MAX_LABEL_VALUE = 63  # Kubernetes' bound on a label value
LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE)]
MAX_LABEL_KEY = 317  # Kubernetes: a 253-character prefix, '/', a 63-character name
# A request to the running crontask (run the task now), read from the CronTask object itself
# (``status.ObjectRef.run_now``), bounded there: no part of the task, so never one of its
# annotations, whose bounds it must not be held to.
RUN_NOW_ANNOTATION = "crontask.dev/run-now"


class Model(BaseModel):
    # Unknown fields are errors: a typo such as `schedul:` must not silently become a default.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        # A field is read only as the resource spells it (timeZone): by its Python name too
        # (time_zone), a file ran with what the schema refuses and the API server drops. A task
        # file's such names are respelled, with a warning, for one release (sources.pythonnames).
        alias_generator=to_camel,
        use_enum_values=False,
        # str() of a ValidationError would quote the value, a URL with its password among
        # them; messages are worded from errors() (sources.messages), which keeps it.
        hide_input_in_errors=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        # An empty value (``namespace:``, ``labels:`` with every entry commented out, a Helm
        # template rendered empty) of a field that may be left out is left out: its default
        # applies, as the API server prunes a null from a CronTask resource before defaulting.
        # A required field's null stays, to be refused; so does an unknown field's.
        if not isinstance(data, dict) or None not in data.values():
            return data
        optional = _optional_keys(cls)
        return {k: v for k, v in data.items() if v is not None or k not in optional}

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


def not_blank(hint: str) -> Callable[[object], object]:
    """A field validator (``mode="before"``) of a path or a name that may be left out: an empty
    or blank one names nothing, and every run would fail. It says ``must not be empty (hint)``
    before the length bound, whose words ("at least 1 character") say nothing of the field."""

    def check(value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError(f"must not be empty ({hint})")
        return value

    return check


@functools.cache
def _optional_keys(model: type[Model]) -> frozenset[str]:
    """The keys of ``model``'s fields that may be left out, as the resource spells them: an
    empty ``time_zone:`` is an unknown field as ``time_zone: UTC`` is (a file's is respelled
    with a warning, ``sources.pythonnames``)."""
    fields = model.model_fields.items()
    return frozenset(f.alias or n for n, f in fields if not f.is_required())


# One set per shape seen (which optional fields were given); bounded, as a hostile folder
# could give every combination.
_FIELD_SETS: dict[frozenset[str], set[str]] = {}
_FIELD_SETS_MAX = 4096
