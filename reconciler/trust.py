"""The TLS context of every https request crontask makes (an http task's attempt, a
notification), and what to say when crontask's CA setting cannot be used.

``SSL_CERT_FILE`` (a PEM bundle) or ``SSL_CERT_DIR`` replaces certifi's public CAs. A bundle
that names no file, or holds no certificate, made building the context raise at start: crontask
stopped with a traceback, its command tasks with it (and a ``SSL_CERT_DIR`` that is no folder
gave no CA without a word). Such a setting is now said once at start,
naming the variable, and the context trusts no CA: every https request fails (an http task's
saying why, before it is sent; a notification's as a certificate it cannot verify), nothing is
verified less, while plain http requests go on.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import ssl
from typing import NamedTuple

import httpx

log = logging.getLogger("crontask")

# How much of the setting's value a message shows (a path; never a secret, but unbounded).
_SHOWN = 200


class Trust(NamedTuple):
    context: ssl.SSLContext
    problem: str | None  # why the CA setting cannot be used; None: it can


@functools.cache
def trust() -> Trust:
    """What httpx's default ``verify=True`` builds (certifi's bundle, or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR``), verification and hostname check on; built once per process, then only
    read (an ``SSLContext`` is safe to share between connections). A setting that cannot be
    used gives a context that verifies against no CA, and the problem."""
    try:
        context = httpx.create_ssl_context()
        why = _folder_problem()
    except OSError as err:  # ssl.SSLError is one
        why = _why(err)
    if why is None:
        return Trust(context, None)
    problem = f"{_setting()} cannot be used: {why}"
    log.warning(
        "https requests fail: the CA certificates cannot be read",
        extra={"fields": {"problem": problem}},
    )
    return Trust(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), problem)


def _folder_problem() -> str | None:
    """Why ``SSL_CERT_DIR``, when httpx reads it (no ``SSL_CERT_FILE``), is no folder: OpenSSL
    then loads no CA from it without a word, and every https request fails to verify."""
    if os.environ.get("SSL_CERT_FILE") or not (folder := os.environ.get("SSL_CERT_DIR")):
        return None
    if os.path.isdir(folder):
        return None
    return "not a folder" if os.path.exists(folder) else os.strerror(errno.ENOENT)


def _setting() -> str:
    """The setting httpx read, as httpx picks it."""
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        value = os.environ.get(name)
        if value:
            shown = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in value[:_SHOWN])
            return f"${name} ({shown}{'...' if len(value) > _SHOWN else ''})"
    return "certifi's CA bundle"


def _why(err: OSError) -> str:
    if isinstance(err, ssl.SSLError):
        if err.reason == "NO_CERTIFICATE_OR_CRL_FOUND":
            return "no certificate in it"
        return f"not a PEM bundle of CA certificates ({err.reason or err})"
    return err.strerror or str(err)
