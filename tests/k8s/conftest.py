"""Fixtures of the emulator's contract suite; other suites import them the same way.

Also the helpers of crontask's own Kubernetes tests (source, status, kubectl end to end):
``real_crd`` registers the committed ``deploy/crd.yaml``, ``wait_until`` polls an observable
condition with a deadline (no sleep-and-hope).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

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
    "wait_until",
]

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
REAL_CRD = ROOT / "deploy" / "crd.yaml"


def wait_until(what: str, condition: Callable[[], T], timeout: float = 10.0) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def real_crd(emulator: Emulator) -> dict[str, Any]:
    """The committed CRD (deploy/crd.yaml) registered in the emulator."""
    crd = yaml.safe_load(REAL_CRD.read_text())
    assert isinstance(crd, dict)
    return emulator.create_crd(crd)
