"""The HTTP credentials of a git source, read again on every sync so that a rotated token works.

Contract: a token (from a file or an environment variable) wins over a password in the URL and
goes with the URL's user name, or ``TOKEN_USERNAME`` when it has none; without a token, the
URL's user:password (if any). A token that cannot be read, or is blank (an empty file, a Secret
caught mid-rotation; an unset or empty variable), is a GitError (the sync's failure) naming
where it was looked for, never an anonymous fetch; but a blank token file for a URL that does
not need it (ssh, a local repository, an http(s) URL with its own password: what an empty
file meant before) is one warning, and the fetch goes on without it. Nothing here is logged or shown
(``Credentials`` hides both fields).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from reconciler.secretfile import read_secret_file
from reconciler.sources.gitprocess import GitError
from reconciler.sources.gitrepo import Credentials, url_credentials

log = logging.getLogger("crontask.sources.git")
_said: set[str] = set()  # the warnings this process gave (one each, not one a sync)

# A token with no user name in the URL is sent as this user: GitHub documents it for tokens, and
# GitLab, Gitea and Bitbucket Server accept any user name with a personal access token.
TOKEN_USERNAME = "x-access-token"  # noqa: S105 - a user name


def credentials_of(url: str, token_file: Path | None, token_env: str | None) -> Credentials | None:
    """The credentials of a fetch from ``url`` (see the module's contract). Raises GitError."""
    from_url = url_credentials(url)
    token: str | None = None
    if token_file is not None:
        try:
            token = read_secret_file(token_file).decode("utf-8").strip()
        except (ValueError, UnicodeDecodeError) as err:
            raise GitError(f"cannot read token file {token_file}: {err}") from None
        if not token and _anonymous_https(url, from_url):
            # Git would fetch anonymously, and a private remote's refusal reads as a missing
            # terminal, not as the Secret being rotated.
            raise GitError(f"token file {token_file} is empty")
        if not token:  # not used for this URL (ssh, a file, a URL with its own password)
            _say_once(f"token file {token_file} is empty; this URL does not use it")
            token = None
    elif token_env is not None:
        token = os.environ.get(token_env, "").strip()
        if not token:
            raise GitError(f"environment variable {token_env} is not set")
    if token is not None:
        user = from_url.username if from_url and from_url.username else TOKEN_USERNAME
        return Credentials(user, token)
    return from_url


def _anonymous_https(url: str, from_url: Credentials | None) -> bool:
    """Whether a fetch from ``url`` without a token would go out with no credentials at all."""
    return url.lower().startswith(("http://", "https://")) and from_url is None


def _say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.warning(message)
