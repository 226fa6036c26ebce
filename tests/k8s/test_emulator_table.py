"""Server-side Table output (what ``kubectl get`` asks for) and kubectl get itself."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl, load_crd
from tests.k8s.emulator.table import human_duration
from tests.k8s.support import GROUP, PLURAL, TABLE_ACCEPT, VERSION, crontask, http_call

COLLECTION = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
HEADERS = {"Accept": TABLE_ACCEPT}


@pytest.fixture
def api(k8s_api_client: Any, crontask_crd: dict[str, Any]) -> Any:
    return client.CustomObjectsApi(k8s_api_client)


def _seed(api: Any) -> None:
    api.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, crontask("backup", schedule="0 3 * * *", suspend=True)
    )
    api.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "backup",
        {"status": {"runs": 4, "lastRun": {"result": "Succeeded"}}},
    )
    api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, crontask("report"))
    api.create_namespaced_custom_object(
        GROUP, VERSION, "team-b", PLURAL, crontask("sync", "team-b")
    )


def test_list_as_table(api: Any, emulator: Emulator) -> None:
    _seed(api)
    status, _, table = http_call(emulator, "GET", COLLECTION, headers=HEADERS)
    assert status == 200
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert table["metadata"]["resourceVersion"] == emulator.resource_version
    columns = [(c["name"], c["type"]) for c in table["columnDefinitions"]]
    assert columns == [
        ("Name", "string"),
        ("Schedule", "string"),
        ("Suspended", "boolean"),
        ("Runs", "integer"),
        ("Last Result", "string"),
        ("Age", "date"),
    ]
    assert table["columnDefinitions"][0]["format"] == "name"
    backup, report = table["rows"]
    assert backup["cells"][:5] == ["backup", "0 3 * * *", True, 4, "Succeeded"]
    assert re.fullmatch(r"\d+s", backup["cells"][5])  # dates are rendered as an age
    assert report["cells"][:5] == ["report", "*/5 * * * *", None, None, None]
    assert backup["object"]["kind"] == "PartialObjectMetadata"
    assert backup["object"]["metadata"]["namespace"] == "default"
    assert "spec" not in backup["object"]


def test_single_object_and_include_object(api: Any, emulator: Emulator) -> None:
    _seed(api)
    _, _, one = http_call(emulator, "GET", f"{COLLECTION}/report", headers=HEADERS)
    assert [r["cells"][0] for r in one["rows"]] == ["report"]
    _, _, full = http_call(emulator, "GET", f"{COLLECTION}?includeObject=Object", headers=HEADERS)
    assert full["rows"][0]["object"]["spec"]["schedule"] == "0 3 * * *"
    _, _, bare = http_call(emulator, "GET", f"{COLLECTION}?includeObject=None", headers=HEADERS)
    assert "object" not in bare["rows"][0]


def test_plain_json_without_table_accept(api: Any, emulator: Emulator) -> None:
    _seed(api)
    _, _, listed = http_call(emulator, "GET", COLLECTION, headers={"Accept": "application/json"})
    assert listed["kind"] == "CronTaskList"


def test_default_age_column_when_none_declared(emulator: Emulator) -> None:
    crd = load_crd()
    del crd["spec"]["versions"][0]["additionalPrinterColumns"]
    emulator.create_crd(crd)
    emulator.create(crontask("x"))
    _, _, table = http_call(emulator, "GET", COLLECTION, headers=HEADERS)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Age"]


def test_date_column_of_an_older_timestamp(emulator: Emulator) -> None:
    crd = load_crd()
    crd["spec"]["versions"][0]["additionalPrinterColumns"] = [
        {"name": "Since", "type": "date", "jsonPath": ".spec.since"}
    ]
    emulator.create_crd(crd)
    since = datetime.now(UTC) - timedelta(hours=3, minutes=5, seconds=10)
    emulator.create(crontask("x", since=since.strftime("%Y-%m-%dT%H:%M:%SZ")))
    _, _, table = http_call(emulator, "GET", COLLECTION, headers=HEADERS)
    assert table["rows"][0]["cells"] == ["x", "3h5m"]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0s"), (119, "119s"), (120, "2m"), (150, "2m30s"), (600, "10m"), (3 * 3600, "3h")],
)
def test_human_duration(seconds: int, expected: str) -> None:
    assert human_duration(seconds) == expected


def _rows(out: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in out.strip().splitlines()]


def test_kubectl_get_by_plural_and_short_name(api: Any, kubectl: Kubectl) -> None:
    _seed(api)
    for resource in ("crontasks", "ct", "crontask", "crontasks.crontask.dev"):
        rows = _rows(kubectl("get", resource))
        assert rows[0] == ["NAME", "SCHEDULE", "SUSPENDED", "RUNS", "LAST RESULT", "AGE"]
        assert rows[1][:5] == ["backup", "0 3 * * *", "true", "4", "Succeeded"]
        assert rows[2][:2] == ["report", "*/5 * * * *"]
        assert len(rows) == 3


def test_kubectl_get_namespaces(api: Any, kubectl: Kubectl) -> None:
    _seed(api)
    rows = _rows(kubectl("get", "ct", "-n", "team-b"))
    assert [r[0] for r in rows] == ["NAME", "sync"]
    everywhere = _rows(kubectl("get", "ct", "-A"))
    assert everywhere[0][:2] == ["NAMESPACE", "NAME"]
    assert [r[:2] for r in everywhere[1:]] == [
        ["default", "backup"],
        ["default", "report"],
        ["team-b", "sync"],
    ]
    empty = kubectl.run("get", "ct", "-n", "nowhere")
    assert empty.stdout == ""
    assert "No resources found in nowhere namespace." in empty.stderr


def test_kubectl_get_yaml_and_json(api: Any, kubectl: Kubectl) -> None:
    _seed(api)
    one = yaml.safe_load(kubectl("get", "ct", "backup", "-o", "yaml"))
    assert one["kind"] == "CronTask"
    assert one["status"]["runs"] == 4
    assert one["metadata"]["generation"] == 1
    listed = json.loads(kubectl("get", "crontasks", "-o", "json"))
    assert [i["metadata"]["name"] for i in listed["items"]] == ["backup", "report"]
    name = kubectl("get", "ct", "-l", "app!=none", "-o", "name")
    assert name.split() == ["crontask.crontask.dev/backup", "crontask.crontask.dev/report"]


def test_kubectl_apply_custom_object_then_get(
    api: Any, emulator: Emulator, kubectl: Kubectl
) -> None:
    manifest = json.dumps(crontask("applied", schedule="@hourly"))
    assert "crontask.crontask.dev/applied created" in kubectl("apply", "-f", "-", stdin=manifest)
    changed = json.dumps(crontask("applied", schedule="@daily"))
    assert "configured" in kubectl("apply", "-f", "-", stdin=changed)
    patch = [r for r in emulator.request_log if r.method == "PATCH"]
    assert [p.content_type for p in patch] == ["application/merge-patch+json"]
    assert _rows(kubectl("get", "ct", "applied"))[1][:2] == ["applied", "@daily"]
    assert "deleted" in kubectl("delete", "ct", "applied")
    assert emulator.objects("crontasks.crontask.dev") == []
