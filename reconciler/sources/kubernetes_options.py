"""What ``--kubernetes`` is told, and the error of a configuration that cannot be loaded, with
no Kubernetes client imported: the CLI reads them for every ``crontask run``, and one without
Kubernetes never loads the client (``sources.kubernetes``, which re-exports them)."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class KubernetesOptions:
    namespace: str | None = None  # None: the kubeconfig context's (or the pod's) namespace
    all_namespaces: bool = False
    kubeconfig: Path | None = None  # None: $KUBECONFIG, ~/.kube/config, else in-cluster
    context: str | None = None  # None: kubectl's current-context (the first file's)
    resync_seconds: float = 300.0


class KubernetesConfigError(Exception):
    """No usable kubeconfig or in-cluster configuration; the message says which was tried."""
