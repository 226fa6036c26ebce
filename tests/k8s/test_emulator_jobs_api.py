"""batch/v1 Jobs as the API server serves them (no controller running): defaults and the
generated selector, validation with field causes, 409 on a second create, immutability, the
status subresource, label selectors, discovery, and ``kubectl get jobs`` / ``kubectl create
job``. Written from the Kubernetes docs ("Jobs": writing a Job spec, pod selector) and the
batch/v1 API reference."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl
from tests.k8s.emulator.manifests import container, job
from tests.k8s.support import TABLE_ACCEPT, WatchCollector, error_body, http_call

JOBS = "/apis/batch/v1/namespaces/default/jobs"
UID, NAME = "batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name"


@pytest.fixture
def batch(k8s_api_client: Any) -> Any:
    return client.BatchV1Api(k8s_api_client)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_create_fills_defaults_selector_and_labels(emulator: Emulator) -> None:
    status, _, created = http_call(emulator, "POST", JOBS, job("backup", "echo hi"))
    assert status == 201
    meta, spec = created["metadata"], created["spec"]
    uid = meta["uid"]
    assert (created["apiVersion"], created["kind"]) == ("batch/v1", "Job")
    assert meta["generation"] == 1
    assert created["status"] == {}
    assert {k: spec[k] for k in ("completions", "parallelism", "backoffLimit")} == {
        "completions": 1,
        "parallelism": 1,
        "backoffLimit": 6,
    }
    assert spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert spec["selector"] == {"matchLabels": {UID: uid}}
    labels = {UID: uid, NAME: "backup", "controller-uid": uid, "job-name": "backup"}
    assert spec["template"]["metadata"]["labels"] == labels
    assert meta["labels"] == labels  # a Job without labels gets its template's
    pod_spec = spec["template"]["spec"]
    assert (pod_spec["terminationGracePeriodSeconds"], pod_spec["dnsPolicy"]) == (
        30,
        "ClusterFirst",
    )
    main = pod_spec["containers"][0]
    assert main["imagePullPolicy"] == "IfNotPresent"
    assert main["terminationMessagePath"] == "/dev/termination-log"
    assert emulator.objects("jobs") == [created]


def test_a_job_keeps_its_own_labels(emulator: Emulator) -> None:
    _, _, created = http_call(
        emulator, "POST", JOBS, job("run-1", labels={"crontask.dev/task": "backup"})
    )
    assert created["metadata"]["labels"] == {"crontask.dev/task": "backup"}
    assert created["spec"]["template"]["metadata"]["labels"]["job-name"] == "run-1"


def test_second_create_of_a_name_is_already_exists(batch: Any) -> None:
    batch.create_namespaced_job("default", job("once"))
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job("default", job("once", "echo other"))
    body = error_body(err.value)
    assert (err.value.status, body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == 'jobs.batch "once" already exists'
    assert body["details"] == {"name": "once", "group": "batch", "kind": "jobs"}


def _without(field: str) -> dict[str, Any]:
    body = job("bad")
    del body["spec"]["template"]["spec"]["containers"][0][field]
    return body


def _policy(policy: str | None) -> dict[str, Any]:
    body = job("bad")
    if policy is None:
        del body["spec"]["template"]["spec"]["restartPolicy"]
    else:
        body["spec"]["template"]["spec"]["restartPolicy"] = policy
    return body


REQUIRED_POLICY = 'Required value: valid values: "OnFailure", "Never"'


@pytest.mark.parametrize(
    ("body", "field", "reason", "message"),
    [
        (_without("image"), "spec.template.spec.containers[0].image", "FieldValueRequired",
         "Required value"),
        (_without("name"), "spec.template.spec.containers[0].name", "FieldValueRequired",
         "Required value"),
        (job("bad", containers=[]), "spec.template.spec.containers", "FieldValueRequired",
         "Required value"),
        (_policy("Always"), "spec.template.spec.restartPolicy", "FieldValueRequired",
         REQUIRED_POLICY),
        (_policy(None), "spec.template.spec.restartPolicy", "FieldValueRequired",
         REQUIRED_POLICY),
        (_policy("Sometimes"), "spec.template.spec.restartPolicy", "FieldValueNotSupported",
         'Unsupported value: "Sometimes": supported values: "OnFailure", "Never"'),
        (job("bad", backoffLimit=-1), "spec.backoffLimit", "FieldValueInvalid",
         "Invalid value: -1: must be greater than or equal to 0"),
        (job("bad", activeDeadlineSeconds=-5), "spec.activeDeadlineSeconds", "FieldValueInvalid",
         "Invalid value: -5: must be greater than or equal to 0"),
        (job("bad", containers=[container("true", "a"), container("true", "a")]),
         "spec.template.spec.containers[1].name", "FieldValueDuplicate", 'Duplicate value: "a"'),
        (job("bad", containers=[container("true", "Bad_Name")]),
         "spec.template.spec.containers[0].name", "FieldValueInvalid", None),
    ],
)  # fmt: skip
def test_invalid_jobs_are_422_with_the_field_in_causes(
    emulator: Emulator, body: dict[str, Any], field: str, reason: str, message: str | None
) -> None:
    # Raw HTTP: the Python client (v37) refuses some of these bodies before sending them.
    code, _, status = http_call(emulator, "POST", JOBS, body)
    assert (code, status["reason"], status["code"]) == (422, "Invalid", 422)
    assert status["message"].startswith('Job.batch "bad" is invalid: ')
    assert (status["details"]["name"], status["details"]["group"]) == ("bad", "batch")
    assert status["details"]["kind"] == "Job"
    causes = {c["field"]: c for c in status["details"]["causes"]}
    assert causes[field]["reason"] == reason
    if message is not None:
        assert causes[field]["message"] == message
        assert f"{field}: {message}" in status["message"]
    assert emulator.objects("jobs") == []


def _shaped(path: str, value: Any) -> dict[str, Any]:
    body = job("bad")
    node = body
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[parts[-1]] = value
    return body


@pytest.mark.parametrize(
    ("path", "value", "found"),
    [
        ("spec.template", "t", "string into Go struct field Job.spec.template of type object"),
        ("spec.template.metadata", 5, "number into Go struct field Job.spec.template.metadata"),
        ("spec.template.spec.containers", {"a": 1}, "object into Go struct field"),
        ("spec.template.spec.containers.0.env", "x", "string into Go struct field"),
        ("spec.selector", {"matchLabels": [1]}, "Job.spec.selector.matchLabels of type map"),
        ("spec.parallelism", True, "bool into Go struct field Job.spec.parallelism of type int64"),
        ("metadata.ownerReferences", ["x"], "Job.metadata.ownerReferences[0] of type object"),
        ("metadata.finalizers", "x", "Job.metadata.finalizers of type list"),
    ],
)
def test_fields_of_the_wrong_type_are_400(
    emulator: Emulator, path: str, value: Any, found: str
) -> None:
    code, _, status = http_call(emulator, "POST", JOBS, _shaped(path, value))
    assert (code, status["reason"]) == (400, "BadRequest")
    assert status["message"].startswith(
        'Job in version "v1" cannot be handled as a Job: json: cannot unmarshal '
    )
    assert found in status["message"]
    assert emulator.objects("jobs") == []


def test_a_status_of_the_wrong_type_is_400(emulator: Emulator) -> None:
    http_call(emulator, "POST", JOBS, job("st"))
    merge = {"Content-Type": "application/merge-patch+json"}
    code, _, _ = http_call(
        emulator, "PATCH", f"{JOBS}/st/status", {"status": {"conditions": "x"}}, headers=merge
    )
    assert code == 400
    code, _, status = http_call(
        emulator, "PATCH", f"{JOBS}/st/status", {"status": {"startTime": "soon"}}, headers=merge
    )
    assert code == 400
    assert "Job.status.startTime of type v1.Time" in status["message"]


def test_several_errors_are_listed_in_brackets(emulator: Emulator) -> None:
    body = _policy("Always")
    del body["spec"]["template"]["spec"]["containers"][0]["image"]
    _, _, status = http_call(emulator, "POST", JOBS, body)
    assert status["message"] == (
        'Job.batch "bad" is invalid: [spec.template.spec.containers[0].image: Required value, '
        f"spec.template.spec.restartPolicy: {REQUIRED_POLICY}]"
    )
    assert [c["field"] for c in status["details"]["causes"]] == [
        "spec.template.spec.containers[0].image",
        "spec.template.spec.restartPolicy",
    ]


def test_a_name_longer_than_a_label_value_is_invalid(batch: Any) -> None:
    """The job-name label carries the name: 64 characters pass as a name, not as a label."""
    name = "n" * 64
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job("default", job(name))
    causes = error_body(err.value)["details"]["causes"]
    assert {c["field"] for c in causes} == {"metadata.labels", "spec.template.labels"}
    assert all(c["message"].endswith("must be no more than 63 characters") for c in causes)
    batch.create_namespaced_job("default", job("n" * 63))


def test_generate_name_is_cut_to_fit_63_characters(emulator: Emulator) -> None:
    body = job("")
    body["metadata"] = {"generateName": "nightly-"}
    _, _, short = http_call(emulator, "POST", JOBS, body)
    assert re.fullmatch(r"nightly-[a-z0-9]{5}", short["metadata"]["name"])
    body["metadata"] = {"generateName": "x" * 70}
    _, _, cut = http_call(emulator, "POST", JOBS, body)
    assert re.fullmatch(r"x{58}[a-z0-9]{5}", cut["metadata"]["name"])


def test_the_template_and_selector_are_immutable(batch: Any, emulator: Emulator) -> None:
    batch.create_namespaced_job("default", job("fixed", "echo one"))
    (body,) = emulator.objects("jobs")
    body["spec"]["template"]["spec"]["containers"][0]["command"] = ["sh", "-c", "echo two"]
    with pytest.raises(ApiException) as err:
        batch.replace_namespaced_job("fixed", "default", body)
    causes = error_body(err.value)["details"]["causes"]
    assert [(c["field"], c["message"].endswith("field is immutable")) for c in causes] == [
        ("spec.template", True)
    ]
    with pytest.raises(ApiException) as err:
        batch.patch_namespaced_job(
            "fixed", "default", {"spec": {"selector": {"matchLabels": {"job-name": "fixed"}}}}
        )
    assert "spec.selector" in {c["field"] for c in error_body(err.value)["details"]["causes"]}
    labelled = batch.patch_namespaced_job("fixed", "default", {"metadata": {"labels": {"a": "b"}}})
    assert labelled.metadata.generation == 1
    suspended = batch.patch_namespaced_job("fixed", "default", {"spec": {"suspend": True}})
    assert suspended.metadata.generation == 2


def test_status_is_a_subresource(batch: Any) -> None:
    batch.create_namespaced_job("default", job("st"))
    now = _stamp(datetime.now(UTC))
    patched = batch.patch_namespaced_job_status(
        "st", "default", {"status": {"active": 1, "startTime": now}}
    )
    assert (patched.status.active, patched.metadata.generation) == (1, 1)
    ignored = batch.patch_namespaced_job("st", "default", {"status": {"active": 5}})
    assert ignored.status.active == 1


def test_list_and_watch_with_a_label_selector(batch: Any, emulator: Emulator) -> None:
    batch.create_namespaced_job("default", job("a-1", labels={"crontask.dev/task": "a"}))
    batch.create_namespaced_job("default", job("b-1", labels={"crontask.dev/task": "b"}))
    listed = batch.list_namespaced_job("default", label_selector="crontask.dev/task=a")
    assert [j.metadata.name for j in listed.items] == ["a-1"]
    watch = WatchCollector(
        batch.list_namespaced_job,
        "default",
        label_selector="crontask.dev/task=a",
        resource_version=listed.metadata.resource_version,
    ).start()
    try:
        emulator.wait_for_watches(1, "jobs")
        batch.create_namespaced_job("default", job("a-2", labels={"crontask.dev/task": "a"}))
        batch.create_namespaced_job("default", job("b-2", labels={"crontask.dev/task": "b"}))
        batch.patch_namespaced_job(
            "a-1", "default", {"metadata": {"labels": {"crontask.dev/task": "c"}}}
        )
        seen = [(e["type"], e["object"].metadata.name) for e in watch.take(2)]
        assert seen == [("ADDED", "a-2"), ("DELETED", "a-1")]
    finally:
        watch.stop()


def test_discovery_serves_jobs_and_pods(k8s_api_client: Any, kubectl: Kubectl) -> None:
    groups: dict[str, Any] = {
        g.name: g for g in client.ApisApi(k8s_api_client).get_api_versions().groups
    }
    assert groups["batch"].preferred_version.group_version == "batch/v1"
    batch = {r.name: r for r in client.BatchV1Api(k8s_api_client).get_api_resources().resources}
    assert (batch["jobs"].kind, batch["jobs"].namespaced, batch["jobs"].categories) == (
        "Job",
        True,
        ["all"],
    )
    assert set(batch["jobs/status"].verbs) == {"get", "patch", "update"}
    core = {r.name: r for r in client.CoreV1Api(k8s_api_client).get_api_resources().resources}
    assert core["pods"].short_names == ["po"]
    assert core["pods/log"].verbs == ["get"]
    assert core["pods/log"].kind == "Pod"
    table = kubectl("api-resources", "--api-group=batch", "--no-headers")
    assert re.match(r"jobs\s+batch/v1\s+true\s+Job", table)


def _rows(out: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in out.strip().splitlines()]


def _seed_statuses(batch: Any) -> None:
    start = datetime.now(UTC) - timedelta(minutes=5)
    statuses = {
        "done": {
            "startTime": _stamp(start),
            "completionTime": _stamp(start + timedelta(seconds=65)),
            "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True"}],
        },
        "broken": {
            "startTime": _stamp(start),
            "failed": 7,
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
        },
        "going": {"startTime": _stamp(start), "active": 1},
    }
    for name, status in statuses.items():
        batch.create_namespaced_job("default", job(name))
        batch.patch_namespaced_job_status(name, "default", {"status": status})
    batch.create_namespaced_job("default", job("wide", completions=3, parallelism=2))


def test_table_columns_of_jobs(batch: Any, emulator: Emulator) -> None:
    _seed_statuses(batch)
    _, _, table = http_call(emulator, "GET", JOBS, headers={"Accept": TABLE_ACCEPT})
    columns = [(c["name"], c["type"], c["priority"]) for c in table["columnDefinitions"]]
    assert columns == [
        ("Name", "string", 0),
        ("Status", "string", 0),
        ("Completions", "string", 0),
        ("Duration", "string", 0),
        ("Age", "string", 0),
        ("Containers", "string", 1),
        ("Images", "string", 1),
        ("Selector", "string", 1),
    ]
    rows = {r["cells"][0]: r["cells"] for r in table["rows"]}
    assert rows["done"][1:4] == ["Complete", "1/1", "65s"]
    assert rows["broken"][1:3] == ["Failed", "0/1"]
    assert re.fullmatch(r"5m(\d+s)?", rows["broken"][3])  # no completionTime: until now
    assert rows["going"][1:3] == ["Running", "0/1"]
    assert rows["wide"][1:4] == ["Running", "0/3", ""]
    assert rows["wide"][5:7] == ["main", "busybox:1.36"]
    assert rows["wide"][7].startswith(f"{UID}=")


def test_kubectl_get_jobs_prints_the_real_columns(batch: Any, kubectl: Kubectl) -> None:
    _seed_statuses(batch)
    rows = _rows(kubectl("get", "jobs"))
    assert rows[0] == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    by_name = {r[0]: r for r in rows[1:]}
    assert by_name["done"][1:4] == ["Complete", "1/1", "65s"]
    assert by_name["broken"][1:3] == ["Failed", "0/1"]
    wide = _rows(kubectl("get", "job", "done", "-o", "wide"))
    assert wide[0] == [
        "NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"
    ]  # fmt: skip


def test_kubectl_create_from_a_manifest(emulator: Emulator, kubectl: Kubectl) -> None:
    manifest = kubectl(
        "create", "job", "hello", "--image=busybox:1.36", "--dry-run=client", "-o", "json",
        "--", "sh", "-c", "echo hi",
    )  # fmt: skip
    assert kubectl("create", "-f", "-", stdin=manifest).strip() == "job.batch/hello created"
    (stored,) = emulator.objects("jobs")
    pod_spec = stored["spec"]["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    assert pod_spec["containers"][0]["command"] == ["sh", "-c", "echo hi"]


def test_protobuf_bodies_are_refused_with_415(emulator: Emulator, kubectl: Kubectl) -> None:
    """kubectl's typed writes (``kubectl create job``) send protobuf, which the emulator does
    not decode: it says so with 415 instead of failing on the bytes."""
    failed = kubectl.run("create", "job", "hello", "--image=busybox", "--", "true", check=False)
    assert failed.returncode == 1
    assert "decodes JSON bodies only" in failed.stderr
    assert emulator.objects("jobs") == []
