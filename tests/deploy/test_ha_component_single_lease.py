"""components/ha drops the base Role's rule for the Lease crontask-single: ``--ha`` never reads
it (``runtime.start`` starts the single check only without replicas), and the rule stays for a
crontask without ``--ha``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.deploy.test_manifests import DEPLOY, grants, kustomize, with_components

SINGLE = ("coordination.k8s.io", "leases/crontask-single")


def role(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == "crontask")


def test_the_base_role_reads_the_single_lease() -> None:
    assert grants(role(kustomize(DEPLOY)))[SINGLE] == {"get", "update"}


def test_the_ha_component_drops_only_the_single_lease_rule(tmp_path: Path) -> None:
    base = grants(role(kustomize(DEPLOY)))
    with_ha = grants(role(kustomize(with_components(tmp_path, "ha"))))
    assert SINGLE not in with_ha
    assert with_ha == {k: v for k, v in base.items() if k != SINGLE}
