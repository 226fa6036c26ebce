"""Fixtures of the emulator's contract suite; other suites import them the same way.

Also the helpers of crontask's own Kubernetes tests (source, status, kubectl end to end):
``real_crd`` registers the committed ``deploy/crd.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import (
    crontask_crd,
    emulator,
    k8s_api_client,
    kubeconfig,
    kubectl,
)

__all__ = [
    "crontask_crd",
    "emulator",
    "k8s_api_client",
    "kubeconfig",
    "kubectl",
    "real_crd",
]

ROOT = Path(__file__).resolve().parents[2]
REAL_CRD = ROOT / "deploy" / "crd.yaml"


@pytest.fixture
def real_crd(emulator: Emulator) -> dict[str, Any]:
    """The committed CRD (deploy/crd.yaml) registered in the emulator."""
    crd = yaml.safe_load(REAL_CRD.read_text())
    assert isinstance(crd, dict)
    return emulator.create_crd(crd)
