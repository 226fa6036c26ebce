"""The auth file as it is now: read again when it changes, or a file it names does, so that a
token removed from it, or a JWT or session secret rotated, takes effect within a second or two,
on a running crontask, without a restart.

Requests only read the settings in force (:meth:`AuthFile.current`: no I/O, on the event loop
or not). :meth:`AuthFile.watch` looks once a second, in a worker thread, at what the settings
are made of: the auth file and the files it names (``jwt.secretFile``, ``jwt.publicKeyFile``,
``sessionSecretFile``), all read at each look (a few hundred bytes; bounded, and a regular file
only: a named pipe in their place would block the reader for ever). A ``stat`` of the auth file
alone would miss a rotated secret: Kubernetes swaps a mounted Secret's files by a symbolic link
(``..data``), the auth file's bytes unchanged. What a look reads (each file's bytes, or why
there are none) is compared, by digest, with what the last load was made of; if it differs the
settings are loaded again and, unless they are made of what those in force are, put in force.
A load that fails leaves the settings read before in force, and the log says so once; it is
tried again as soon as anything it depends on changes (a secret named before it existed, then
written): removing the file, or a typo in it, must not open the API, nor lock everyone out.
A file emptied on purpose (``tokens: []``, no ``jwt``) is put in force, with a warning: it
revokes the last token, and every request that needs a credential is refused (a start with
it is refused: that crontask would serve no one); one naming neither without ``tokens:``
(``{}``, a template's empty values) cannot be used. A change that leaves the settings as they
were (a comment, the layout) keeps the page's sessions.
The same bytes everywhere (a Secret synced again, a ``touch``) change nothing, not even the
sessions. ``metricsRequireAuth`` decides the role of ``/metrics`` when the API is made, at start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
from pathlib import Path
from typing import Final

from reconciler.aio import in_thread
from reconciler.api.auth import AuthConfig, AuthConfigError
from reconciler.secretfile import read_secret_file

log = logging.getLogger("crontask.api")

CHECK_SECONDS: Final = 1.0

# The SHA-256 of the auth file's bytes and the files those bytes name: found again only when
# the bytes change (a YAML parse once a second would cost more than reading the files).
_Named = tuple[bytes, tuple[Path, ...]]
_NOTHING_NAMED: Final[_Named] = (b"", ())


@dataclasses.dataclass(frozen=True, slots=True)
class _Look:
    """What the settings would be made of now: the auth file's bytes (or why it cannot be
    read), the files they name, and a digest of all of it."""

    data: bytes | AuthConfigError
    named: _Named
    digest: bytes


def _framed(*parts: bytes) -> bytes:
    """Each part after its length: no part runs into the next in a digest."""
    return b"".join(len(part).to_bytes(8, "big") + part for part in parts)


def _look(path: Path, named: _Named) -> _Look:
    """Read the auth file and each file it names; ``named``: those found at the last look."""
    found = hashlib.sha256()
    try:
        data = AuthConfig.read(path)
    except AuthConfigError as err:
        found.update(_framed(b"!", str(err).encode()))
        return _Look(err, named, found.digest())
    own = hashlib.sha256(data).digest()
    if named[0] != own:
        named = (own, AuthConfig.named_files(data, path))
    found.update(_framed(b"=", data))
    for file in named[1]:
        try:  # the bound the load reads it with; the load warns of one others may read
            found.update(_framed(os.fsencode(file), b"=", read_secret_file(file, public=True)))
        except ValueError as err:  # missing, say: so is its appearing a change
            found.update(_framed(os.fsencode(file), b"!", str(err).encode()))
    return _Look(data, named, found.digest())


class AuthFile:
    """:meth:`current` gives the settings in force now (see :meth:`open`)."""

    def __init__(self, path: Path, config: AuthConfig, look: _Look) -> None:
        self.path = path
        self.config = config
        self._named = look.named
        self._in_force = look.digest  # what ``config`` is made of
        self._tried = look.digest  # what the last load was made of, used or not

    @classmethod
    def open(cls, path: Path) -> AuthFile:
        """Read ``path`` for the start; :class:`AuthConfigError` stops it. The files are
        looked at before they are loaded: a change meanwhile is loaded again at the first
        look, never missed."""
        look = _look(path, _NOTHING_NAMED)
        if isinstance(look.data, AuthConfigError):
            raise look.data
        return cls(path, AuthConfig.parse(look.data, path).for_start(path), look)

    def current(self) -> AuthConfig:
        return self.config

    async def watch(self, stop: asyncio.Event, every: float = CHECK_SECONDS) -> None:
        """Look at the files every ``every`` seconds until ``stop``, off the event loop."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                try:
                    await in_thread(self.refresh)
                except Exception:  # the settings in force stay; the next look tries again
                    log.exception("auth file: looking at it failed; will look again")

    def refresh(self) -> None:
        """Blocking: put the settings in force again if what they are made of changed (see
        the module)."""
        look = _look(self.path, self._named)
        self._named = look.named
        if look.digest == self._tried:
            return
        try:
            if isinstance(look.data, AuthConfigError):
                raise look.data
            # The named files are read again here, after the look: what is loaded is never
            # older than what the look saw (newer, the next look loads it again).
            config = AuthConfig.parse(look.data, self.path)
        except AuthConfigError as err:
            self._tried = look.digest
            log.error(
                "auth file changed but cannot be used; the settings read before stay in force",
                extra={"fields": {"auth_config": str(self.path), "error": str(err)[:300]}},
            )
            return
        self._tried = look.digest
        if look.digest == self._in_force:  # back as it was (a typo undone): sessions go on
            return
        fields = {"auth_config": str(self.path), "tokens": len(config.tokens)}
        if config.settings_digest == self.config.settings_digest:
            # A comment, the layout: the same settings (a key drawn by this process kept),
            # so the sessions sealed under them go on, as on a replica with the new file.
            self.config = dataclasses.replace(config, session_key=self.config.session_key)
            self._in_force = look.digest
            log.warning(
                "auth file read again: its settings are as before (a comment or the layout "
                "changed): page sessions go on",
                extra={"fields": fields},
            )
            return
        self.config, self._in_force = config, look.digest
        if config.accepts_none:
            log.warning(
                "auth file read again: it names no token and no jwt, so no credential is "
                "accepted now: every request that needs one is refused, and page sessions end",
                extra={"fields": fields},
            )
            return
        log.warning(
            "auth file read again: its tokens are in force now, and page sessions begin anew",
            extra={"fields": fields},
        )
