"""The manifests in deploy/: valid offline against the Kubernetes schemas, least privilege,
a locked-down pod, and in step with the Dockerfile, the auth format and the CLI."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from reconciler.api.auth import AuthConfig
from reconciler.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSIONS = ["1.30.0", kubernetes_validate.utils.latest_version()]
KUSTOMIZE_KINDS = {"Kustomization", "Component"}  # kustomize's own files, not API objects
COMPONENT_LINE = "# components:\n#   - components/all-namespaces"


def manifest_files() -> list[Path]:
    # deploy/monitoring: Prometheus rules and a PrometheusRule (see tests/deploy/test_monitoring.py)
    return sorted(p for p in DEPLOY.rglob("*.yaml") if DEPLOY / "monitoring" not in p.parents)


def with_components(tmp_path: Path, *names: str) -> Path:
    """A copy of deploy/ with ``components:`` enabled, as the comments in kustomization.yaml
    tell a user to do."""
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    kustomization = copy / "kustomization.yaml"
    listed = "".join(f"\n  - components/{name}" for name in names)
    kustomization.write_text(
        kustomization.read_text().replace(COMPONENT_LINE, "components:" + listed)
    )
    return copy


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def api_objects() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in manifest_files():
        for document in documents(path):
            if document["kind"] not in KUSTOMIZE_KINDS:
                where = path.relative_to(DEPLOY)
                found.append(
                    (f"{where}:{document['kind']}/{document['metadata']['name']}", document)
                )
    return found


def one(kind: str, name: str = "crontask") -> dict[str, Any]:
    matches = [d for _, d in api_objects() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


@pytest.mark.parametrize("k8s", K8S_VERSIONS)
@pytest.mark.parametrize(("name", "document"), api_objects(), ids=[n for n, _ in api_objects()])
def test_every_manifest_validates_offline(name: str, document: dict[str, Any], k8s: str) -> None:
    kubernetes_validate.validate(document, k8s, strict=True)


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = documents(DEPLOY / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    on_disk = {
        p.name
        for p in DEPLOY.glob("*.yaml")
        if p.name != "kustomization.yaml" and not p.name.endswith(".example.yaml")
    }
    assert listed == on_disk
    assert kustomization["namespace"] == "crontask"
    assert COMPONENT_LINE in (DEPLOY / "kustomization.yaml").read_text()


def test_placeholder_secret_is_never_deployed() -> None:
    kustomization = documents(DEPLOY / "kustomization.yaml")[0]
    assert not [r for r in kustomization["resources"] if "example" in r]


# -- rendered by kustomize, as `kubectl apply -k` would ---------------------------------------


def kustomize(folder: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH: rendering deploy/ with kustomize needs it")
    out = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d is not None]


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)


def test_kustomize_renders_the_namespaced_setup() -> None:
    objects = kustomize(DEPLOY)
    assert kinds(objects) == [
        "CustomResourceDefinition/crontasks.crontask.dev",
        "Deployment/crontask",
        "Namespace/crontask",
        "Role/crontask",
        "RoleBinding/crontask",
        "Service/crontask",
        "ServiceAccount/crontask",
    ]
    for o in objects:
        kubernetes_validate.validate(o, K8S_VERSIONS[0], strict=True)
        if o["kind"] not in ("Namespace", "CustomResourceDefinition"):
            assert o["metadata"]["namespace"] == "crontask", o["kind"]


def test_kustomize_renders_the_all_namespaces_component(tmp_path: Path) -> None:
    objects = kustomize(with_components(tmp_path, "all-namespaces"))
    assert "ClusterRole/crontask" in kinds(objects)
    assert "ClusterRoleBinding/crontask" in kinds(objects)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"][-1] == (
        "--all-namespaces"
    )
    binding = next(o for o in objects if o["kind"] == "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "crontask", "namespace": "crontask"}
    ]
    for o in objects:
        kubernetes_validate.validate(o, K8S_VERSIONS[0], strict=True)


@pytest.mark.parametrize("others", [(), ("all-namespaces",)])
def test_kustomize_renders_the_ha_component(tmp_path: Path, others: tuple[str, ...]) -> None:
    objects = kustomize(with_components(tmp_path, *others, "ha"))
    assert {"PodDisruptionBudget/crontask", "Role/crontask-leases"} <= set(kinds(objects))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["type"] == "RollingUpdate"
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    assert "--ha" in args
    # The URL, with its password, stays in the environment: on the command line every process
    # of the pod could read it in /proc/1/cmdline.
    assert not any("--db" in arg or "CRONTASK_DB" in arg for arg in args)
    assert container["env"] == [
        {
            "name": "CRONTASK_DB",
            "valueFrom": {"secretKeyRef": {"name": "crontask-db", "key": "url"}},
        }
    ]
    assert "podAntiAffinity" in pod["affinity"]
    leases = next(
        o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == "crontask-leases"
    )
    # The calls reconciler/membership/leases.py makes, nothing more.
    assert grants(leases) == {
        ("coordination.k8s.io", "leases"): {"create", "list", "patch", "delete"}
    }
    for o in objects:
        kubernetes_validate.validate(o, K8S_VERSIONS[0], strict=True)


# -- RBAC: exactly what the reconciler calls --------------------------------------------------

# Each verb is a call the code makes: the informer's list and watch
# (sources/kubernetes.py), the status writer's patch and its re-read after a 409 or an unnamed 404
# (sinks/kubernetes.py), the event recorder's create and its patch of a repeat
# (sinks/kubernetes_events.py); the job action's create, get, list, watch and delete of Jobs,
# list of their pods and get of pods/log (sources/kubernetes_jobs.py, sources/job_calls.py), and
# the finalizers update that an ownerReference with blockOwnerDeletion needs. Nothing calls
# update on a CronTask or a single-object get of one.
CRONTASK_RULES = {
    ("crontask.dev", "crontasks"): {"list", "watch"},
    ("crontask.dev", "crontasks/status"): {"get", "patch"},
    ("", "events"): {"create", "patch"},
    ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
    ("", "pods"): {"list"},
    ("", "pods/log"): {"get"},
    ("crontask.dev", "crontasks/finalizers"): {"update"},
}


def grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "resourceNames", "verbs"}, rule
        # A rule limited to named objects grants "resource/name" only.
        named = [f"/{name}" for name in rule.get("resourceNames", [])] or [""]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for name in named:
                    found.setdefault((group, resource + name), set()).update(rule["verbs"])
    return found


# The Role alone (crontask's own namespace): the Lease crontask-single that a crontask without
# --ha gets and updates, that one only, and creates (membership/single.py). Not in the
# ClusterRole: the Lease lives in crontask's namespace whatever namespaces it watches.
SINGLE_LEASE_RULES = {
    ("coordination.k8s.io", "leases/crontask-single"): {"get", "update"},
    ("coordination.k8s.io", "leases"): {"create"},
}


def test_role_is_least_privilege() -> None:
    assert grants(one("Role")) == CRONTASK_RULES | SINGLE_LEASE_RULES


def test_cluster_role_is_least_privilege() -> None:
    assert grants(one("ClusterRole")) == CRONTASK_RULES


def test_no_wildcards_anywhere() -> None:
    for _, document in api_objects():
        for rule in document.get("rules", []):
            assert "*" not in [*rule["apiGroups"], *rule["resources"], *rule["verbs"]], rule


def test_bindings_name_the_service_account() -> None:
    account = one("ServiceAccount")
    for kind, role in (("RoleBinding", "Role"), ("ClusterRoleBinding", "ClusterRole")):
        binding = one(kind)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role,
            "name": "crontask",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "crontask", "namespace": "crontask"}
        ]
    assert account["metadata"]["namespace"] == "crontask"


# -- the Deployment ---------------------------------------------------------------------------

ARGS = [
    "run",
    "--kubernetes",
    "--state-dir",
    "/var/lib/crontask/state",
    "--listen",
    "0.0.0.0:8080",
    "--auth-config",
    "/etc/crontask/auth.yaml",
]


def pod() -> dict[str, Any]:
    spec: dict[str, Any] = one("Deployment")["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod()["containers"]
    assert len(containers) == 1
    return containers[0]


def test_one_scheduler_at_a_time() -> None:
    spec = one("Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_the_pod_is_locked_down() -> None:
    security = pod()["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container()["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod()["serviceAccountName"] == "crontask"


def test_writable_paths_are_volumes() -> None:
    mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod()["volumes"]}
    assert "emptyDir" in volumes[mounts["/var/lib/crontask"]]
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert volumes[mounts["/etc/crontask"]]["secret"]["secretName"] == "crontask-auth"


def test_args_probes_and_resources() -> None:
    c = container()
    assert c["args"] == ARGS
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # The API answers after start-up, whose first git clone may take the whole --git-timeout.
    startup = c["startupProbe"]
    assert startup["httpGet"] == {"path": "/healthz", "port": "http"}
    git_timeout = build_parser().parse_args(["run", "x"]).git_timeout
    assert startup["periodSeconds"] * startup["failureThreshold"] > 2 * git_timeout
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert set(c["resources"]) == {"requests", "limits"}
    assert set(c["resources"]["requests"]) == set(c["resources"]["limits"]) == {"cpu", "memory"}


def test_grace_covers_shutdown_and_kill_grace() -> None:
    defaults = build_parser().parse_args(["run", "x"])
    assert pod()["terminationGracePeriodSeconds"] > defaults.shutdown_grace + defaults.kill_grace


def test_the_cli_understands_the_args() -> None:
    parser = build_parser()
    with contextlib.redirect_stdout(io.StringIO()) as text, pytest.raises(SystemExit):
        parser.parse_args(["run", "--help"])
    if "--kubernetes" not in text.getvalue():
        pytest.skip("`crontask run --kubernetes` is not wired yet")
    with contextlib.redirect_stderr(io.StringIO()) as errors:
        try:
            args = parser.parse_args(ARGS)
        except SystemExit:
            pytest.fail(f"crontask rejects the Deployment's args: {errors.getvalue()}")
    assert str(args.state_dir) == "/var/lib/crontask/state"  # inside the volume


def test_the_service_exposes_api_and_metrics() -> None:
    service = one("Service")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == one("Deployment")["spec"]["selector"]["matchLabels"]
    # No prometheus.io/* annotations: they invite a second scrape of every pod under another
    # job name than the rules' "crontask" (each alert twice, the dashboard's sums doubled).
    assert "annotations" not in service["metadata"]


def test_the_namespace_enforces_restricted_pods() -> None:
    labels = one("Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_example_auth_file_loads(tmp_path: Path) -> None:
    secret = one("Secret", "crontask-auth")
    path = tmp_path / "auth.yaml"
    path.write_text(secret["stringData"]["auth.yaml"])
    config = AuthConfig.load(path)
    assert [t.name for t in config.tokens] == ["ci-bot"]


# -- the Dockerfile ---------------------------------------------------------------------------


def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def stages() -> list[str]:
    return re.split(r"^FROM ", dockerfile(), flags=re.MULTILINE)[1:]


def test_dockerfile_is_multi_stage_on_slim_python_311() -> None:
    assert len(stages()) == 2
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile()
    assert all(s.startswith("${PYTHON_IMAGE}") for s in stages())
    assert "pip wheel" in stages()[0]


def test_runtime_stage_has_no_build_tools() -> None:
    runtime = stages()[-1]
    for tool in ("gcc", "build-essential", "g++", "make ", "-dev "):
        assert tool not in runtime, tool
    assert "--no-index" in runtime  # installs the builder's wheels only
    # The venv's own installer and setuptools go once the wheels are in: crontask needs
    # neither, and an old setuptools is what image scanners flag.
    assert re.search(r"pip uninstall --yes setuptools pip\b", runtime)


def test_runtime_stage_can_fetch_git_over_ssh() -> None:
    """git only recommends an ssh client, and the slim image has none: without it, an ssh://
    or git@host: source failed with git's "Could not read from remote repository"."""
    install = re.search(r"apt-get install [^\n]*", stages()[-1])
    assert install is not None
    assert {"git", "openssh-client", "ca-certificates"} <= set(install[0].split())


def test_image_user_matches_the_pod() -> None:
    user = re.search(r"^USER (\d+):(\d+)$", dockerfile(), flags=re.MULTILINE)
    assert user, "USER must be numeric, or runAsNonRoot cannot verify it"
    security = pod()["securityContext"]
    assert (int(user[1]), int(user[2])) == (security["runAsUser"], security["runAsGroup"])
    assert user[1] != "0"


def test_entrypoint() -> None:
    assert 'ENTRYPOINT ["crontask"]' in dockerfile()
    assert "HEALTHCHECK" not in dockerfile()  # Kubernetes probes do this
