"""A Kubernetes API emulator that the project owns, for tests.

``Emulator`` serves, on 127.0.0.1, what crontask uses of the Kubernetes API: discovery, CRDs and
the custom resources they declare (with the status subresource), core/v1 Events, Namespaces and
Pods (with ``pods/log``), batch/v1 Jobs, coordination.k8s.io/v1 Leases; resourceVersion and
optimistic concurrency, watch with bookmarks and 410 Expired, server-side Table output,
ownerReferences and cascading deletion; and fault hooks. With ``run_jobs=True``, a Job
controller and a kubelet double run each Job's containers as local processes.
"""

from .emulator import Emulator
from .errors import ApiError
from .server import RequestRecord

__all__ = ["ApiError", "Emulator", "RequestRecord"]
