"""batch/v1 Jobs in the API: the defaults, the generated selector and labels, and the
validation of the real server's job registry (a Job's Pods are made by ``jobs.py``).

A DELETE of a batch/v1 Job without ``propagationPolicy`` orphans its Pods, as on a real
server (kept for compatibility with old clients); ``kubectl delete`` asks for Background.
"""

from __future__ import annotations

import copy
from typing import Any

from . import errors, naming
from .errors import FieldError
from .pods import default_pod_spec, pod_spec_errors
from .selectors import label_selector_matches
from .strategy import ORPHAN, Strategy

Obj = dict[str, Any]

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"
JOB_RESTART_POLICIES = ["OnFailure", "Never"]
_NONNEGATIVE = ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit")
_IMMUTABLE = ("selector", "template", "completions", "completionMode")
MAX_ANNOTATIONS_BYTES = 256 * 1024  # TotalAnnotationSizeLimitB: keys and values, UTF-8 bytes


def default_job_spec(spec: Obj) -> None:
    """``SetDefaults_Job`` (batch/v1) and the pod template's defaults."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 2147483647 if "backoffLimitPerIndex" in spec else 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault(
        "podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
    )
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        default_pod_spec(template["spec"])


def _generate_selector(job: Obj) -> None:
    """The job strategy's ``generateSelector``: the four job labels on the pod template (kept
    when the user set them; validation then rejects a conflict), the selector on the uid."""
    meta, spec = job["metadata"], job["spec"]
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    for key in (LEGACY_JOB_NAME, JOB_NAME):
        labels.setdefault(key, meta["name"])
    for key in (LEGACY_CONTROLLER_UID, CONTROLLER_UID):
        labels.setdefault(key, meta["uid"])
    selector = spec.get("selector") if isinstance(spec.get("selector"), dict) else {}
    selector.setdefault("matchLabels", {}).setdefault(CONTROLLER_UID, meta["uid"])
    spec["selector"] = selector


def _generated_label_errors(job: Obj) -> list[FieldError]:
    meta = job["metadata"]
    labels = job["spec"]["template"].get("metadata", {}).get("labels") or {}
    found = []
    for key, want in (
        (LEGACY_CONTROLLER_UID, meta["uid"]),
        (LEGACY_JOB_NAME, meta["name"]),
        (CONTROLLER_UID, meta["uid"]),
        (JOB_NAME, meta["name"]),
    ):
        if labels.get(key) != want:
            found.append(
                errors.invalid_value(
                    f"spec.template.metadata.labels[{key}]", labels.get(key), f"must be '{want}'"
                )
            )
    return found


def _spec_errors(spec: Obj) -> list[FieldError]:
    found: list[FieldError] = []
    for field in _NONNEGATIVE:
        value = spec.get(field)
        if value is not None and (not isinstance(value, int) or value < 0):
            found.append(
                errors.invalid_value(f"spec.{field}", value, "must be greater than or equal to 0")
            )
    mode = spec.get("completionMode")
    if mode not in ("NonIndexed", "Indexed"):
        found.append(errors.not_supported("spec.completionMode", mode, ["NonIndexed", "Indexed"]))
    elif mode == "Indexed" and spec.get("completions") is None:
        found.append(errors.required("spec.completions", "when completion mode is Indexed"))
    replacement = spec.get("podReplacementPolicy")
    if replacement not in ("Failed", "TerminatingOrFailed"):
        found.append(
            errors.not_supported(
                "spec.podReplacementPolicy", replacement, ["Failed", "TerminatingOrFailed"]
            )
        )
    template = spec.get("template")
    if not isinstance(template, dict):
        return [*found, errors.required("spec.template")]
    found += naming.label_errors(template.get("metadata", {}).get("labels"), "spec.template.labels")
    found += annotation_size_errors(template.get("metadata", {}), "spec.template.annotations")
    pod_spec = template.get("spec")
    found += pod_spec_errors(pod_spec, "spec.template.spec")
    if isinstance(pod_spec, dict) and pod_spec.get("ephemeralContainers"):
        found.append(
            errors.forbidden(
                "spec.template.spec.ephemeralContainers",
                "ephemeral containers not allowed in pod template",
            )
        )
    policy = pod_spec.get("restartPolicy") if isinstance(pod_spec, dict) else None
    if policy in ("Always", "", None):
        found.append(
            errors.required(
                "spec.template.spec.restartPolicy", 'valid values: "OnFailure", "Never"'
            )
        )
    elif policy not in JOB_RESTART_POLICIES:
        found.append(
            errors.not_supported("spec.template.spec.restartPolicy", policy, JOB_RESTART_POLICIES)
        )
    elif spec.get("podFailurePolicy") is not None and policy != "Never":
        found.append(
            errors.invalid_value(
                "spec.template.spec.restartPolicy",
                policy,
                'only "Never" is supported when podFailurePolicy is specified',
            )
        )
    selector = spec.get("selector")
    if selector is None:
        found.append(errors.required("spec.selector"))
    else:
        labels = template.get("metadata", {}).get("labels") or {}
        if not label_selector_matches(selector, labels):
            found.append(
                errors.invalid_value(
                    "spec.template.metadata.labels",
                    labels,
                    "`selector` does not match template `labels`",
                )
            )
    return found


def annotation_size_errors(meta: Any, field: str) -> list[FieldError]:
    """``ValidateAnnotationsSize``: at most 256 KiB of keys and values."""
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if not isinstance(annotations, dict):
        return []
    size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
    return [errors.too_long(field, MAX_ANNOTATIONS_BYTES)] if size > MAX_ANNOTATIONS_BYTES else []


def job_errors(job: Obj) -> list[FieldError]:
    """``ValidateJob``, for the fields the emulator serves."""
    found = naming.label_errors(job["metadata"].get("labels"), "metadata.labels")
    found += annotation_size_errors(job["metadata"], "metadata.annotations")
    spec = job.get("spec")
    if not isinstance(spec, dict):
        return [*found, errors.required("spec.template")]
    if not spec.get("manualSelector") and isinstance(spec.get("template"), dict):
        found += _generated_label_errors(job)
    return found + _spec_errors(spec)


class JobStrategy(Strategy):
    default_propagation = ORPHAN

    def prepare_create(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            default_job_spec(spec)
            if not spec.get("manualSelector"):
                _generate_selector(obj)
            # batch/v1 defaulting: a Job without labels carries its pod template's labels.
            template_labels = spec.get("template", {}).get("metadata", {}).get("labels")
            if template_labels and not obj["metadata"].get("labels"):
                obj["metadata"]["labels"] = copy.deepcopy(template_labels)
        found = job_errors(obj)
        if found:
            raise errors.invalid_fields("Job", "batch", obj["metadata"]["name"], found)
        obj["status"] = {}

    def prepare_update(self, old: Obj, new: Obj) -> None:
        spec = new.get("spec")
        if isinstance(spec, dict):
            default_job_spec(spec)
        found = job_errors(new)
        new_spec = spec if isinstance(spec, dict) else {}
        for field in _IMMUTABLE:
            if old["spec"].get(field) != new_spec.get(field):
                found.append(
                    errors.invalid_value(f"spec.{field}", new_spec.get(field), "field is immutable")
                )
        if found:
            raise errors.invalid_fields("Job", "batch", old["metadata"]["name"], found)
