"""The fixtures the membership suite shares with the Kubernetes and store suites."""

from __future__ import annotations

from tests.k8s.emulator.fixtures import crontask_crd, emulator, k8s_api_client, kubeconfig
from tests.store.conftest import pg_admin, pg_url

__all__ = ["crontask_crd", "emulator", "k8s_api_client", "kubeconfig", "pg_admin", "pg_url"]
