"""Discovery: /api, /api/v1, /apis, /apis/<group>[/<version>], /version, OpenAPI for kubectl."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kubernetes import client, config

from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl
from tests.k8s.support import GROUP, VERSION, http_call


def test_starts_and_stops_fast() -> None:
    began = time.monotonic()
    emu = Emulator()
    emu.start()
    started = time.monotonic()
    status, _, body = http_call(emu, "GET", "/version")
    emu.stop()
    stopped = time.monotonic()
    assert status == 200
    assert body["major"] == "1"
    assert started - began < 0.1
    assert stopped - started < 0.1


def test_core_versions_and_resources(emulator: Emulator, k8s_api_client: Any) -> None:
    versions = client.CoreApi(k8s_api_client).get_api_versions()
    assert versions.versions == ["v1"]
    resources = {r.name: r for r in client.CoreV1Api(k8s_api_client).get_api_resources().resources}
    assert resources["events"].kind == "Event"
    assert resources["events"].namespaced is True
    assert resources["events"].short_names == ["ev"]
    assert resources["namespaces"].namespaced is False
    assert set(resources["events"].verbs) >= {"create", "get", "list", "patch", "watch"}


def test_group_list_has_builtin_and_crd_groups(
    emulator: Emulator, k8s_api_client: Any, crontask_crd: dict[str, Any]
) -> None:
    apis: Any = client.ApisApi(k8s_api_client)
    groups = {g.name: g for g in apis.get_api_versions().groups}
    assert {"apiextensions.k8s.io", "coordination.k8s.io", GROUP} <= set(groups)
    crontask = groups[GROUP]
    assert [v.group_version for v in crontask.versions] == [f"{GROUP}/{VERSION}"]
    assert crontask.preferred_version.version == VERSION
    status, _, group = http_call(emulator, "GET", f"/apis/{GROUP}")
    assert status == 200
    assert group["kind"] == "APIGroup"
    assert group["preferredVersion"]["version"] == VERSION


def test_crd_group_version_resources(
    emulator: Emulator, k8s_api_client: Any, crontask_crd: dict[str, Any]
) -> None:
    listing = client.CustomObjectsApi(k8s_api_client).get_api_resources(GROUP, VERSION)
    assert listing.group_version == f"{GROUP}/{VERSION}"
    resources = {r.name: r for r in listing.resources}
    main = resources["crontasks"]
    assert (main.singular_name, main.kind, main.namespaced) == ("crontask", "CronTask", True)
    assert main.short_names == ["ct"]
    assert set(main.verbs) == {
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    }
    status = resources["crontasks/status"]
    assert status.kind == "CronTask"
    assert set(status.verbs) == {"get", "patch", "update"}


def test_unknown_group_version_is_404(emulator: Emulator) -> None:
    status, _, body = http_call(emulator, "GET", f"/apis/{GROUP}/{VERSION}")
    assert status == 404
    assert body["kind"] == "Status"
    assert body["reason"] == "NotFound"
    status, _, _ = http_call(
        emulator, "GET", f"/apis/{GROUP}/{VERSION}/namespaces/default/crontasks"
    )
    assert status == 404


def test_version(k8s_api_client: Any) -> None:
    info = client.VersionApi(k8s_api_client).get_code()
    assert (info.major, info.minor) == ("1", "32")
    assert info.git_version.startswith("v1.32")


def test_openapi_v3_answers_what_kubectl_checks_and_v2_is_absent(
    emulator: Emulator, crontask_crd: dict[str, Any]
) -> None:
    status, _, root = http_call(emulator, "GET", "/openapi/v3")
    assert status == 200
    url = root["paths"][f"apis/{GROUP}/{VERSION}"]["serverRelativeURL"]
    status, _, doc = http_call(emulator, "GET", url)
    assert status == 200
    patch = doc["paths"][f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/crontasks/{{name}}"][
        "patch"
    ]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": GROUP,
        "version": VERSION,
        "kind": "CronTask",
    }
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert http_call(emulator, "GET", "/openapi/v2")[0] == 404


def test_kubectl_api_resources_and_versions(kubectl: Kubectl, crontask_crd: dict[str, Any]) -> None:
    out = kubectl("api-resources", "--no-headers")
    rows = {line.split()[0]: line.split() for line in out.splitlines()}
    assert rows["crontasks"] == ["crontasks", "ct", f"{GROUP}/{VERSION}", "true", "CronTask"]
    assert rows["leases"][1:] == ["coordination.k8s.io/v1", "true", "Lease"]
    assert f"{GROUP}/{VERSION}" in kubectl("api-versions").split()
    assert "Server Version: v1.32" in kubectl("version")


def test_kubeconfig_loads_with_load_kube_config(kubeconfig: Path) -> None:
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), client_configuration=configuration
    )
    assert configuration.host.startswith("http://127.0.0.1:")
    with client.ApiClient(configuration) as api_client:
        namespaces: Any = client.CoreV1Api(api_client).list_namespace()
        assert "default" in [n.metadata.name for n in namespaces.items]
