"""Where, as whom and how long the client commands call a running crontask, as the environment
says: ``$CRONTASK_SERVER`` (else :data:`DEFAULT_SERVER`; ``--server`` comes first, where a
command has it), ``$CRONTASK_TOKEN`` (sent as a bearer token) and ``$CRONTASK_TIMEOUT`` (else
:data:`TIMEOUT_SECONDS`). A value that cannot be used is a one-line usage error, exit 2 (a token
is never quoted in it); a token's one trailing line end is not part of it.
:mod:`~reconciler.cli.client` makes the calls.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from typing import Final

from reconciler.cli.credentials import TOKEN_ENV as TOKEN_ENV
from reconciler.cli.main_helpers import server_url

DEFAULT_SERVER: Final = "http://127.0.0.1:8080"
SERVER_ENV: Final = "CRONTASK_SERVER"
TIMEOUT_ENV: Final = "CRONTASK_TIMEOUT"
TIMEOUT_SECONDS: Final = 10.0  # one request in all: connecting, sending, every read
MAX_TIMEOUT_SECONDS: Final = 3600.0
_MAX_TOKEN: Final = 16 * 1024  # a JWT with many claims is a few KiB
_SENDABLE: Final = re.compile(r"[\x21-\x7e]+")


def default_server() -> str:
    """``$CRONTASK_SERVER`` (checked as ``--server`` is; a bad one is a usage error, exit 2)
    or the default."""
    return configured_server() or DEFAULT_SERVER


def configured_server() -> str | None:
    """``$CRONTASK_SERVER`` (checked as ``--server`` is; a bad one is a usage error, exit 2),
    or ``None`` when it is unset or empty."""
    server = os.environ.get(SERVER_ENV) or None
    if server is None:
        return None
    try:
        return server_url(server)
    except argparse.ArgumentTypeError as err:
        print(f"crontask: ${SERVER_ENV}: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def default_token() -> str | None:
    """``$CRONTASK_TOKEN``, when it is one an HTTP header can carry (visible ASCII), without
    one line end (``\\n`` or ``\\r\\n``) after it; else a one-line error, which never quotes the
    token."""
    token = os.environ.get(TOKEN_ENV) or None
    if token is not None:
        # A Secret put in the environment (secretKeyRef) or a file read without $(...) keeps its
        # last line's end: kubectl strips it from a token file too. One only: anything else in
        # it is not part of a token a header can carry, and stays refused.
        token = token[:-2] if token.endswith("\r\n") else token.removesuffix("\n")
        token = token or None
    if token is not None and (len(token) > _MAX_TOKEN or not _SENDABLE.fullmatch(token)):
        print(
            f"crontask: ${TOKEN_ENV}: not a token crontask can send (at most {_MAX_TOKEN} "
            "visible ASCII characters, no spaces)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return token


def default_timeout() -> float:
    """``$CRONTASK_TIMEOUT`` (seconds, more than 0 and at most an hour; a bad one is a usage
    error, exit 2) or :data:`TIMEOUT_SECONDS`."""
    text = os.environ.get(TIMEOUT_ENV) or ""
    if not text:
        return TIMEOUT_SECONDS
    try:
        seconds = float(text) if len(text) <= 20 else math.nan
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= MAX_TIMEOUT_SECONDS:  # NaN is not either
        print(
            f"crontask: ${TIMEOUT_ENV}: expected seconds, more than 0 and at most "
            f"{MAX_TIMEOUT_SECONDS:g}, got {text[:40]!r}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return seconds
