"""The auth file as it is now: read again when it changes, so that a token removed from it
stops working within a second or two, on a running crontask, without a restart.

Requests only read the settings in force (:meth:`AuthFile.current`: no I/O, on the event loop
or not). :meth:`AuthFile.watch` looks at the file once a second, in a worker thread: a
``stat`` while nothing changes. A change is a new size, modification time or file (inode and
device: Kubernetes swaps a mounted Secret's files by a symbolic link, and an editor may write a
new file in the old one's place); the bytes are then read (a regular file only: a named pipe
in its place would block the reader for ever) and, if they differ from those in force, checked
and put in force. A file that cannot be read again, or that does not check, leaves the settings
read before in force (the log says so, once a change): removing the file, or a typo in it,
must not open the API, nor lock everyone out. Bytes unchanged (a Secret synced again, a
``touch``) change nothing, not even the sessions. The files it names (``secretFile``,
``sessionSecretFile``) are read again with it, not watched on their own; ``metricsRequireAuth``
decides the role of ``/metrics`` when the API is made, at start.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path
from typing import Final

from reconciler.aio import in_thread
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
    """:meth:`current` gives the settings in force now; ``seen`` and ``digest``: the file's
    signature and bytes' SHA-256 when ``config`` was read from it (see :meth:`open`)."""

    def __init__(
        self, path: Path, config: AuthConfig, seen: _Signature, digest: bytes | None
    ) -> None:
        self.path = path
        self.config = config
        self._seen = seen
        self._digest = digest

    @classmethod
    def open(cls, path: Path) -> AuthFile:
        """Read ``path`` for the start; :class:`AuthConfigError` stops it. The signature is
        taken first: a change while it is read is read again at the first look."""
        seen = _signature(path)
        data = AuthConfig.read(path)
        return cls(path, AuthConfig.parse(data, path), seen, hashlib.sha256(data).digest())

    def current(self) -> AuthConfig:
        return self.config

    async def watch(self, stop: asyncio.Event, every: float = CHECK_SECONDS) -> None:
        """Look at the file every ``every`` seconds until ``stop``, off the event loop."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                try:
                    await in_thread(self.refresh)
                except Exception:  # the settings in force stay; the next look tries again
                    log.exception("auth file: looking at it failed; will look again")

    def refresh(self) -> None:
        """Blocking: put the file's settings in force if it changed (see the module)."""
        seen = _signature(self.path)
        if seen == self._seen:
            return
        self._seen = seen
        try:
            data = AuthConfig.read(self.path)
            digest = hashlib.sha256(data).digest()
            if digest == self._digest:
                return
            config = AuthConfig.parse(data, self.path)
        except AuthConfigError as err:
            log.error(
                "auth file changed but cannot be used; the settings read before stay in force",
                extra={"fields": {"auth_config": str(self.path), "error": str(err)[:300]}},
            )
            return
        self.config, self._digest = config, digest
        log.warning(
            "auth file read again: its tokens are in force now, and page sessions begin anew",
            extra={"fields": {"auth_config": str(self.path), "tokens": len(config.tokens)}},
        )
