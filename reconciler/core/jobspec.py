"""A batch/v1 JobSpec checked as the Kubernetes API server would check it, before any Job exists.

A ``job`` task embeds a JobSpec (what a CronJob's ``jobTemplate.spec`` holds). It is checked
when its definition is read, so that ``crontask validate`` says ``file:line:col`` and a broken
spec never reaches the cluster:

- against the OpenAPI schema of batch/v1 (Kubernetes 1.32, the *strict* variant: a misspelt or
  unknown field anywhere in the spec, the pod template included, is an error). The schema is
  vendored in ``data/jobspec-batch-v1.json`` (built by ``tests/jobs/jobspec_schema.py``, which
  also checks it is fresh); it ships with the code and is read once, like a module. The schema
  lets any object be null (a field set to null is one left out); an entry of a list may not be;
- then the few rules of the API server's own validation (``pkg/apis/batch/validation``,
  ``pkg/apis/core/validation``) that a user most often breaks and the schema cannot say, worded
  as the server words them: at least one container, each with a DNS-1123 name, unique, and an
  image; ``restartPolicy`` ``Never`` or ``OnFailure`` (a Job's pods may not restart
  ``Always``); non-negative counts and a positive deadline; the pod template's label keys
  and values, and its annotation keys (:func:`label_key_problem`, :func:`label_value_problem`,
  which the model uses for ``spec.job.metadata`` too) and their total size
  (:func:`annotations_size_problem`); no ``ephemeralContainers`` in a template; a
  ``podFailurePolicy`` only with ``restartPolicy: Never``; no resource ``requests`` above its
  ``limits`` (compared as quantities);
- then crontask's own rules (:data:`REFUSED`): what would let a Job never end. ``suspend``
  (a suspended Job never starts and its deadline does not run) and ``managedBy`` another
  controller (the Job controller leaves such a Job alone, its deadline included) would keep a
  run ``running`` forever and wedge a ``Forbid`` task; so would ``parallelism: 0`` (no pod
  ever runs: Kubernetes' way to pause a Job). (``ttlSecondsAfterFinished`` is taken,
  as CronJob templates often have it: a Job the TTL controller deletes as soon as it ends is
  recorded by the end the watch saw, see ``runner.job_attempt``; only its log may be gone by then.)

:func:`problems` never raises on bad input and is bounded: it follows the schema, which is not
recursive (a test checks), visits at most :data:`MAX_VALUES` values, and reports at most
:data:`MAX_PROBLEMS` problems: once it has them it looks no further.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
from collections.abc import Iterator, Mapping
from fractions import Fraction
from importlib import resources
from typing import Any, Final

SCHEMA_FILE: Final = "data/jobspec-batch-v1.json"
MAX_VALUES: Final = 20_000
MAX_PROBLEMS: Final = 20
JOB_RESTART_POLICIES: Final = ("OnFailure", "Never")

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
# A label value, and the name part of a label or annotation key (a "qualified name"), as
# k8s.io/apimachinery/pkg/util/validation has them.
LABEL_VALUE: Final = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
MAX_LABEL_VALUE: Final = 63
MAX_KEY_PREFIX: Final = 253
MAX_ANNOTATIONS_BYTES: Final = 256 * 1024  # keys and values, UTF-8 (TotalAnnotationSizeLimitB)
# Room for the annotations crontask adds to each Job (its task, run, attempt, trigger and slot:
# ``core.jobs``; under 1 KiB with the longest keys), kept out of a Job's own.
CRONTASK_JOB_ANNOTATIONS: Final = 2 * 1024
JOB_CONTROLLER: Final = "kubernetes.io/job-controller"  # the only managedBy a Job may have here
_INT_RANGES: Final = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
# What the vendored schema may use; anything else is a vendoring mistake, refused at load.
KEYWORDS: Final = frozenset(
    {"type", "format", "properties", "additionalProperties", "required", "items", "oneOf", "$ref"}
)

Path = tuple[str | int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    path: Path  # inside the JobSpec: ("template", "spec", "containers", 0, "image")
    message: str  # as the API server says it: "Required value"

    def __str__(self) -> str:
        where = dotted(self.path)
        return f"{where}: {self.message}" if where else self.message


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@functools.cache
def schema() -> dict[str, Any]:
    """The vendored schema: ``{"kubernetes": version, "root": name, "definitions": {...}}``."""
    text = resources.files("reconciler.core").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def problems(spec: Any) -> list[Problem]:
    """Everything wrong with ``spec`` as a JobSpec (empty: it is valid), at most
    :data:`MAX_PROBLEMS`, the schema's findings first."""
    if spec is None:  # the schema's root is an object or null: a JobSpec must be there
        return [Problem((), "Required value")]
    checker = _Checker(schema()["definitions"])
    checker.check(spec, {"$ref": schema()["root"]}, ())
    if not checker.found and not checker.exhausted:
        checker.found.extend(_server_rules(spec))
    return checker.found[:MAX_PROBLEMS]


class _Checker:
    def __init__(self, definitions: Mapping[str, Any]) -> None:
        self.definitions = definitions
        self.found: list[Problem] = []
        self.budget = MAX_VALUES
        self.exhausted = False

    @property
    def done(self) -> bool:
        """Nothing more will be reported: the problems are at their cap, or the budget is spent.
        Every loop stops here, so that the work is bounded by the cap and not by the spec
        (an unknown field's close-name search is costly: 80 000 of them took seconds)."""
        return self.exhausted or len(self.found) >= MAX_PROBLEMS

    def report(self, path: Path, message: str) -> None:
        if len(self.found) < MAX_PROBLEMS:
            self.found.append(Problem(path, message))

    def check(self, value: Any, node: Mapping[str, Any], path: Path, in_list: bool = False) -> None:
        if self.done:
            return
        self.budget -= 1
        if self.budget < 0:
            self.exhausted = True
            self.report((), f"more than {MAX_VALUES} values: too large for a JobSpec")
            return
        while "$ref" in node:
            node = self.definitions[node["$ref"]]
        if in_list and value is None and "object" in _types(node):
            # The schema lets every object be null, as a field set to null is a field left
            # out; an entry of a list is no field: the server decodes a null one into an
            # empty object (a container without name or image), and every later reader of
            # the spec (the rules below, the Job built from it) expects a mapping there.
            self.report(path, f"Invalid value: must be {_type_names(node)} (got null)")
            return
        if "oneOf" in node:
            if not any(_type_ok(value, branch) for branch in node["oneOf"]):
                kinds = " or ".join(_type_names(branch) for branch in node["oneOf"])
                self.report(path, f"Invalid value: must be {kinds} (got {_kind(value)})")
            return
        if not _type_ok(value, node):
            # The type, never the value: a number where a string belongs may be a secret (an
            # env value), and this message reaches the status, an Event and the logs.
            self.report(path, f"Invalid value: must be {_type_names(node)} (got {_kind(value)})")
            return
        if value is None:
            return
        if isinstance(value, int) and node.get("format") in _INT_RANGES:
            low, high = _INT_RANGES[node["format"]]
            if not low <= value <= high:
                self.report(path, f"Invalid value: {value}: out of range for {node['format']}")
        if isinstance(value, dict):
            self._object(value, node, path)
        elif isinstance(value, list) and "items" in node:
            for index, item in enumerate(value):
                if self.done:
                    break
                self.check(item, node["items"], (*path, index), in_list=True)

    def _object(self, value: dict[Any, Any], node: Mapping[str, Any], path: Path) -> None:
        properties: Mapping[str, Any] = node.get("properties", {})
        extra = node.get("additionalProperties")
        for name in node.get("required", ()):
            if value.get(name) is None:
                self.report((*path, name), "Required value")
        for key, item in value.items():
            if self.done:
                break
            name = str(key)
            if name in properties:
                self.check(item, properties[name], (*path, name))
            elif isinstance(extra, dict):
                self.check(item, extra, (*path, name))
            elif extra is False or properties:
                close = difflib.get_close_matches(name[:64], list(properties), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.report((*path, name[:64]), f"unknown field{hint}")


def _types(node: Mapping[str, Any]) -> tuple[str, ...]:
    kind = node.get("type")
    if kind is None:
        return ()
    return (kind,) if isinstance(kind, str) else tuple(kind)


def _type_ok(value: Any, node: Mapping[str, Any]) -> bool:
    kinds = _types(node)
    if not kinds:
        return True
    for kind in kinds:
        if kind == "null" and value is None:
            return True
        if kind == "object" and isinstance(value, dict):
            return True
        if kind == "array" and isinstance(value, list):
            return True
        if kind == "string" and isinstance(value, str):
            return True
        if kind == "boolean" and isinstance(value, bool):
            return True
        # YAML's true is no number, and 1.0 is no integer (the server refuses both).
        if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
            return True
    return False


def _type_names(node: Mapping[str, Any]) -> str:
    names = [k for k in _types(node) if k != "null"]
    return " or ".join(f"{'an' if k[0] in 'aeiou' else 'a'} {k}" for k in names) or "null"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value) if isinstance(value, str | int | float | None) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- the API server's own rules, on a spec the schema accepted --------------------------------


def _server_rules(spec: Mapping[str, Any]) -> Iterator[Problem]:
    yield from _refused(spec)
    for field in ("backoffLimit", "completions", "parallelism", "ttlSecondsAfterFinished"):
        if (value := spec.get(field)) is not None and value < 0:
            yield Problem((field,), f"Invalid value: {value}: must be greater than or equal to 0")
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and deadline <= 0:
        yield Problem(
            ("activeDeadlineSeconds",), f"Invalid value: {deadline}: must be greater than 0"
        )
    yield from _template_metadata((spec.get("template") or {}).get("metadata") or {})
    pod = (spec.get("template") or {}).get("spec")
    where: Path = ("template", "spec")
    if pod is None:
        yield Problem(where, "Required value")
        return
    policy = pod.get("restartPolicy")
    if policy is not None and policy not in JOB_RESTART_POLICIES:
        supported = ", ".join(f'"{p}"' for p in JOB_RESTART_POLICIES)
        yield Problem(
            (*where, "restartPolicy"),
            f"Unsupported value: {_shown(policy)}: supported values: {supported}",
        )
    elif spec.get("podFailurePolicy") is not None and policy not in (None, "Never"):
        # Unset is fine: crontask sets Never (core.jobs). The server checks any policy object,
        # an empty one too: a pod restarted in place never fails, so no rule could match.
        yield Problem(
            (*where, "restartPolicy"),
            f'Invalid value: {_shown(policy)}: only "Never" is supported when podFailurePolicy '
            "is specified",
        )
    if pod.get("ephemeralContainers"):  # added to a running pod (kubectl debug), never made
        yield Problem((*where, "ephemeralContainers"), _EPHEMERAL)
    if not pod.get("containers"):
        yield Problem((*where, "containers"), "Required value")
    names: set[str] = set()
    for field in ("initContainers", "containers"):
        for index, container in enumerate(pod.get(field) or ()):
            if not isinstance(container, Mapping):  # the schema's walk refused it already
                yield Problem((*where, field, index), "Invalid value: must be an object")
                continue
            yield from _container(container, (*where, field, index), names)
            yield from _resources(container, (*where, field, index))


_EPHEMERAL: Final = "Forbidden: ephemeral containers not allowed in pod template"


def _resources(container: Mapping[str, Any], path: Path) -> Iterator[Problem]:
    """A request above its limit: the server's ``ValidateResourceRequirements``. (Not a mount
    of a volume the spec does not declare, which the server refuses too: it validates after
    the cluster's admission webhooks, and one may add that volume.)"""
    resources_ = container.get("resources") or {}
    limits = resources_.get("limits") or {}
    for name, request in (resources_.get("requests") or {}).items():
        if name not in limits:
            continue
        wanted, most = quantity(request), quantity(limits[name])
        if wanted is not None and most is not None and wanted > most:
            # The server shows both in canonical form (1000m as 1); the user's own are kept.
            yield Problem(
                (*path, "resources", "requests", str(name)),
                f"Invalid value: {json.dumps(str(request))}: must be less than or equal to "
                f"{name} limit of {limits[name]}",
            )


# A resource.Quantity: a signed decimal number, then a binary (Ki..Ei) or decimal (n..E) suffix
# or a decimal exponent (1e3). What does not parse is the server's to refuse (a 400).
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([KMGTPE]i)|([numkMGTPE]?)|[eE]([+-]?\d+))$")
MAX_QUANTITY_DIGITS: Final = 64  # the server keeps 18 significant digits (int64) at most
_BINARY: Final[dict[str, int]] = {p: 1024 ** (i + 1) for i, p in enumerate("KMGTPE")}
_DECIMAL: Final = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}


def quantity(value: Any) -> Fraction | None:
    """The exact value of a ``resource.Quantity`` (``500m``, ``1Gi``, ``2e3``, 0.5), None if
    it is not one. Exact, so that ``0.1`` and ``100m`` are equal."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    match = _QUANTITY.fullmatch(str(value).strip())
    if match is None:
        return None
    number, binary, decimal, exponent = match.groups()
    # 1e99999 or 6 000 digits: no resource (and int() refuses over 4 300 digits); bounds the work.
    if len(number) > MAX_QUANTITY_DIGITS or (exponent is not None and len(exponent) > 4):
        return None
    if binary:
        return Fraction(number) * _BINARY[binary[0]]
    power = int(exponent) if exponent is not None else _DECIMAL[decimal or ""]
    scale = Fraction(10 ** abs(power))
    return Fraction(number) * (scale if power >= 0 else 1 / scale)


def annotations_size_problem(
    annotations: Mapping[str, Any], limit: int = MAX_ANNOTATIONS_BYTES, why: str = ""
) -> str | None:
    """What is wrong with ``annotations`` as a whole (None: nothing): more than ``limit``
    bytes of keys and values, in UTF-8 (``ValidateAnnotationsSize``: 256 KiB)."""
    size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > limit:
        return f"Too long: may not be more than {limit} bytes{why}"
    return None


def _container(container: Mapping[str, Any], path: Path, names: set[str]) -> Iterator[Problem]:
    name = container.get("name") or ""
    if not _DNS1123_LABEL.fullmatch(name) or len(name) > 63:
        yield Problem(
            (*path, "name"),
            f"Invalid value: {_shown(name)}: a lowercase RFC 1123 label must consist of lower "
            "case alphanumeric characters or '-', and must start and end with an alphanumeric "
            "character",
        )
    elif name in names:
        yield Problem((*path, "name"), f"Duplicate value: {_shown(name)}")
    names.add(name)
    if not container.get("image"):
        yield Problem((*path, "image"), "Required value")


def _template_metadata(meta: Mapping[str, Any]) -> Iterator[Problem]:
    where: Path = ("template", "metadata")
    for key, value in (meta.get("labels") or {}).items():
        if (wrong := label_key_problem(str(key)) or label_value_problem(value)) is not None:
            yield Problem((*where, "labels", str(key)[:64]), wrong)
    for key in meta.get("annotations") or {}:
        if (wrong := label_key_problem(str(key))) is not None:
            yield Problem((*where, "annotations", str(key)[:64]), wrong)
    if (wrong := annotations_size_problem(meta.get("annotations") or {})) is not None:
        yield Problem((*where, "annotations"), wrong)


def label_key_problem(key: str) -> str | None:
    """What is wrong with ``key`` as a label or annotation key (None: nothing): an optional
    DNS-1123 subdomain prefix of at most 253 characters and ``/``, then a name of at most 63
    characters, alphanumeric at both ends, with ``-``, ``_`` and ``.`` between."""
    prefix, slash, name = key.rpartition("/")
    if slash and (
        not prefix or len(prefix) > MAX_KEY_PREFIX or not _DNS1123_SUBDOMAIN.fullmatch(prefix)
    ):
        return (
            f"Invalid value: {_shown(key)}: prefix part must be a lowercase RFC 1123 subdomain "
            f"of at most {MAX_KEY_PREFIX} characters (e.g. 'example.com')"
        )
    if not name or len(name) > MAX_LABEL_VALUE or not _QUALIFIED_NAME.fullmatch(name):
        return (
            f"Invalid value: {_shown(key)}: name part must consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character, at most "
            f"{MAX_LABEL_VALUE} characters"
        )
    return None


def label_value_problem(value: Any) -> str | None:
    """What is wrong with ``value`` as a label value (None: nothing): empty, or at most 63
    characters, alphanumeric at both ends, with ``-``, ``_`` and ``.`` between."""
    if not isinstance(value, str):
        return f"Invalid value: must be a string (got {_kind(value)})"
    if len(value) > MAX_LABEL_VALUE:
        return f"Invalid value: {_shown(value)}: must be no more than {MAX_LABEL_VALUE} characters"
    if not LABEL_VALUE.fullmatch(value):
        return (
            f"Invalid value: {_shown(value)}: a valid label must be an empty string or consist "
            "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character"
        )
    return None


# -- crontask's own rules -----------------------------------------------------------------------

# Fields of a JobSpec that crontask refuses, and why (what the run would come to).
REFUSED: Final = {
    "suspend": (
        "crontask creates each Job to run at once: a suspended Job never starts, nor does its "
        "deadline run, so its run would never end (and a Forbid task would never run again); "
        "to pause the task, set spec.suspend"
    ),
    "managedBy": (
        "a Job managed by another controller is not run, timed out or finished by the "
        "cluster's Job controller, so its run might never end; only "
        f'"{JOB_CONTROLLER}" (the default) may be given'
    ),
    "parallelism": (
        "a Job with parallelism 0 runs no pod (Kubernetes' way to pause a Job), so its run "
        "would never end (and a Forbid task would never run again); to pause the task, set "
        "spec.suspend"
    ),
}


def _refused(spec: Mapping[str, Any]) -> Iterator[Problem]:
    allowed: dict[str, tuple[Any, ...]] = {"suspend": (False,), "managedBy": (JOB_CONTROLLER,)}
    for field, why in REFUSED.items():
        value = spec.get(field)
        if field == "parallelism":  # any count but 0 (the schema's and counts' checks say)
            if type(value) is not int or value != 0:
                continue
        elif value is None or value in allowed.get(field, ()):
            continue
        yield Problem((field,), f"Forbidden: {why}")


class JobSpecError(ValueError):
    """A JobSpec (or the Job's metadata) with problems; raised by the model's check so that
    pydantic carries it (in the error's context) to the YAML loader, which reports each problem
    at its own line, its path relative to the field that raised it."""

    def __init__(self, found: list[Problem]) -> None:
        self.problems = tuple(found)
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        super().__init__(f"{found[0]}{more}")
