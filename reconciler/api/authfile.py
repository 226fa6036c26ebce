"""The auth file as it is now: read again when it changes, so that a token removed from it
stops working within a second, on a running crontask, without a restart.

A change is a new size, modification time or file (inode and device: Kubernetes swaps a
mounted Secret's files by a symbolic link, and an editor may write a new file in the old one's
place). The file is looked at once a second at most, by the request that asks for the auth
settings: a ``stat``, no read, while nothing changes. A file that cannot be read again, or that
does not check, leaves the settings read before in force (the log says so, once a change):
removing the file, or a typo in it, must not open the API, nor lock everyone out. The files it
names (``secretFile``, ``sessionSecretFile``) are read again with it, not watched on their own;
``metricsRequireAuth`` decides the role of ``/metrics`` when the API is made, at start.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from reconciler.api.auth import AuthConfig, AuthConfigError

log = logging.getLogger("crontask.api")

CHECK_SECONDS: Final = 1.0

_Signature = tuple[int, int, int, int] | None


def _signature(path: Path) -> _Signature:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_mtime_ns, found.st_size, found.st_ino, found.st_dev)


class AuthFile:
    """``config``: the settings ``path`` held when crontask started (read by the caller, whose
    error stops the start); :meth:`current` gives the settings in force now."""

    def __init__(
        self,
        path: Path,
        config: AuthConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        every: float = CHECK_SECONDS,
    ) -> None:
        self.path = path
        self.config = config
        self._clock = clock
        self._every = every
        self._seen = _signature(path)
        self._checked = clock()
        self._lock = threading.Lock()  # requests ask from the loop and from worker threads

    def current(self) -> AuthConfig:
        if self._clock() - self._checked < self._every:
            return self.config
        with self._lock:
            now = self._clock()
            if now - self._checked < self._every:
                return self.config
            self._checked = now
            seen = _signature(self.path)
            if seen == self._seen:
                return self.config
            self._seen = seen
            try:
                config = AuthConfig.load(self.path)
            except AuthConfigError as err:
                log.error(
                    "auth file changed but cannot be used; the settings read before stay in force",
                    extra={"fields": {"auth_config": str(self.path), "error": str(err)[:300]}},
                )
                return self.config
            self.config = config
            log.warning(
                "auth file read again: its tokens are in force now, and page sessions begin anew",
                extra={"fields": {"auth_config": str(self.path), "tokens": len(config.tokens)}},
            )
            return config
