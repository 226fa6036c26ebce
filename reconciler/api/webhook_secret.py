"""The secret of ``--git-webhook-secret-file``, read again at each signed request, so that a
rotated secret (a leaked one, a Kubernetes Secret swapped by its ``..data`` link) is in force
at the next push, without a restart.

A signed request is rare (a push) and its route shares few places (``admission``), so reading
a small bounded file for each costs nothing worth caching. The read runs in a thread of its
own, one at a time (requests that come meanwhile wait for that read), for at most
:data:`READ_WAIT` seconds: past that the secret in force is used, so a file on a mount that
hangs holds one thread, never the requests nor the threads others share. A file that cannot be
read, or is blank, leaves the secret read before in force, and the log says so once per
change: removing the file, or a blank one, must not let anyone sign (an HMAC with an empty key
is one anyone can compute).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future
from pathlib import Path

from reconciler.secretfile import read_secret_file

log = logging.getLogger("crontask.api")

READ_WAIT = 1.0  # seconds a signed request waits for the file to be read again


class WebhookSecret:
    """:meth:`current`: the secret in force, read again from ``path`` (None: fixed)."""

    def __init__(self, secret: bytes, path: Path | None = None) -> None:
        self.path = path
        self._secret = secret
        self._said: str | None = None  # the last problem logged, said once
        self._lock = threading.Lock()
        self._reading: Future[bytes] | None = None  # the read under way, if any

    async def fresh(self) -> bytes:
        """The secret read again (or the read under way, shared), or the one in force if that
        takes longer than :data:`READ_WAIT`: see the module."""
        if self.path is None:
            return self._secret
        with self._lock:
            reading = self._reading
            if reading is None or reading.done():
                reading = self._reading = Future()
                threading.Thread(
                    target=self._read, args=(reading,), name="crontask-webhook-secret", daemon=True
                ).start()
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(reading)), READ_WAIT)
        except TimeoutError:
            with self._lock:
                return self._secret

    def _read(self, into: Future[bytes]) -> None:
        try:
            into.set_result(self.current())
        except BaseException as err:  # handed to whoever waits
            into.set_exception(err)

    def current(self) -> bytes:
        """Blocking (a file read): the secret now."""
        if self.path is None:
            return self._secret
        try:
            secret = read_secret_file(self.path).strip()
            problem = None if secret else "empty (after trimming whitespace)"
        except ValueError as err:
            secret, problem = b"", str(err)
        with self._lock:
            if problem is None:
                if secret != self._secret:
                    log.info("webhook secret read again", extra={"fields": self._fields()})
                self._secret, self._said = secret, None
            elif problem != self._said:
                self._said = problem
                log.error(
                    "webhook secret file cannot be used; the secret read before stays in force",
                    extra={"fields": {**self._fields(), "error": problem}},
                )
            return self._secret

    def _fields(self) -> dict[str, object]:
        return {"file": str(self.path)}
