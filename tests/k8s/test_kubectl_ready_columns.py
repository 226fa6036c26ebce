"""``kubectl get crontasks`` says which tasks crontask does not run as written: the ``Ready``
condition's status as a column, and its reason with ``-o wide`` (``InvalidSpec``, ``Conflict``,
a task refused by ``--max-tasks``: before, only the conditions said so). The committed CRD, the
real ``crontask run --kubernetes`` and the real kubectl against the emulator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from reconciler.core.crd import crd_document
from tests.helpers import wait_for
from tests.k8s.conftest import REAL_CRD
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl
from tests.k8s.test_kubectl_e2e import Crontask, condition, manifest

READY = '.status.conditions[?(@.type=="Ready")]'


def test_the_crd_declares_ready_and_a_wide_reason() -> None:
    [version] = crd_document()["spec"]["versions"]
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert columns["Ready"] == {
        "name": "Ready",
        "type": "string",
        "jsonPath": f"{READY}.status",
        "description": "Whether the task runs as its spec says (the Ready condition).",
    }
    assert columns["Reason"]["jsonPath"] == f"{READY}.reason"
    assert columns["Reason"]["priority"] == 1  # kubectl get -o wide
    names = list(columns)
    assert names.index("Suspend") < names.index("Ready") < names.index("Reason")
    assert names.index("Reason") < names.index("Active")
    # The committed copy says the same (tests/deploy/test_crd.py checks all of it).
    [committed] = yaml.safe_load(REAL_CRD.read_text())["spec"]["versions"]
    assert committed["additionalPrinterColumns"] == version["additionalPrinterColumns"]


def _table(out: str) -> dict[str, dict[str, str]]:
    """``kubectl get`` output as {name: {column: cell}}: each cell is the row's text under its
    column's header (kubectl aligns them; headers and cells may hold single spaces)."""
    header, *rows = out.rstrip().splitlines()
    spans = [(m.group(), m.start()) for m in re.finditer(r"\S+(?: \S+)*", header)]
    ends = [start for _, start in spans[1:]] + [None]
    table = {}
    for row in rows:
        cells = {
            name: row[start:end].strip() for (name, start), end in zip(spans, ends, strict=True)
        }
        table[cells["NAME"]] = cells
    return table


@pytest.mark.slow
@pytest.mark.e2e
def test_kubectl_get_shows_ready_and_its_reason(
    kubectl: Kubectl, emulator: Emulator, tmp_path: Path
) -> None:
    crontask = Crontask(tmp_path, emulator.write_kubeconfig(tmp_path / "kubeconfig"))
    kubectl("apply", "-f", str(REAL_CRD))
    kubectl("apply", "-f", "-", stdin=manifest("good", "0 0 1 1 *", ["true"]))
    kubectl("apply", "-f", "-", stdin=manifest("broken", "* * 99 * * *", ["true"]))
    try:
        crontask.start()
        wait_for("good scheduled", lambda: condition(kubectl, "good").get("reason") == "Scheduled")
        wait_for("broken refused", lambda: condition(kubectl, "broken").get("reason"))
        plain = _table(kubectl("get", "crontasks"))
        assert (plain["good"]["READY"], plain["broken"]["READY"]) == ("True", "False")
        assert "REASON" not in plain["good"]  # priority 1: only with -o wide
        wide = _table(kubectl("get", "crontasks", "-o", "wide"))
        assert (wide["good"]["REASON"], wide["broken"]["REASON"]) == ("Scheduled", "InvalidSpec")
        assert wide["good"]["SCHEDULE"] == "0 0 1 1 *"
    finally:
        crontask.stop()
