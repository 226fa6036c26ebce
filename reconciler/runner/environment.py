"""What a command's environment starts from, before its own ``env`` and the run's
``CRONTASK_*`` variables.

By default a task gets what cron and a Kubernetes Job give it, not crontask's whole
environment: where crontask's credentials arrive by environment (a database URL, a git token,
a cloud key), every task would otherwise inherit them. ``minimal`` keeps only the variables
that say who and where the process is and how it speaks (``MINIMAL``), plus the names an
operator passes on purpose; ``inherit`` passes everything. Proxy settings (``HTTPS_PROXY``...)
are left out on purpose: their URLs may carry credentials; pass them by name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Literal

TaskEnv = Literal["minimal", "inherit"]

MINIMAL = (
    *("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"),
    # Where the API server is, in a pod: what a Job's container gets, and what kubectl and the
    # client libraries need to find the cluster with the pod's service account.
    *("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"),
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def valid_name(name: str) -> bool:
    """A name a shell can read back (``$NAME``)."""
    return _NAME.fullmatch(name) is not None


def task_environment(
    environ: Mapping[str, str], mode: TaskEnv, passed: Iterable[str] = ()
) -> dict[str, str]:
    """The environment every command of this crontask starts from."""
    if mode == "inherit":
        return dict(environ)
    base = {name: environ[name] for name in (*MINIMAL, *passed) if name in environ}
    # A PATH is needed to find a command by name; exec's own fallback is the same.
    base.setdefault("PATH", os.defpath)
    return base
