"""The environment of every git call the git source makes, credentials included.

Kept apart from ``gitrepo`` (the git calls themselves) because this is what decides what git,
and everything it starts, can read of crontask:

- git runs isolated from the machine. Of crontask's environment it inherits only what git, its
  HTTP helper (libcurl) and ssh need, no credential among it but a proxy URL's (``INHERITED``;
  of git's own variables, only the paths of its CA bundles, ``GIT_SSL_CAINFO`` and the like):
  git and its children are dumpable, so a command task (same user) reads their
  ``/proc/<pid>/environ`` during a fetch, and ``CRONTASK_DB``, a ``--git-token-env`` variable
  or a cloud key must not be there. ``GIT_CONFIG_NOSYSTEM=1`` and
  ``GIT_CONFIG_GLOBAL=/dev/null`` (no user or system config: no credential helper, no hooks,
  no ``url.insteadOf`` surprises), ``GIT_TERMINAL_PROMPT=0`` and an empty ``GIT_ASKPASS``
  (never prompt, never fall back to ``SSH_ASKPASS``), ssh in ``BatchMode`` (and with
  keepalives: a server gone silent ends the connection after about a minute, even for a git
  this process left behind), and ``LC_ALL=C`` so that the few messages ``gitrepo`` recognises
  are in English.
- Secrets never reach argv or disk. HTTP credentials (a token, or the user:password of a URL)
  are handed to git by a credential helper defined through ``GIT_CONFIG_COUNT`` /
  ``GIT_CONFIG_KEY_n`` / ``GIT_CONFIG_VALUE_n``, scoped to the repository's
  ``scheme://host[:port]``; the helper is a shell snippet that prints two environment variables
  set only in git's environment (where a command task can read them during a fetch: with a
  proxy URL's userinfo, the only secret git's environment holds). The URL given to git (and
  so stored in ``FETCH_HEAD``-like places and echoed in its messages) never carries userinfo.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

USERNAME_VAR = "CRONTASK_GIT_USERNAME"
PASSWORD_VAR = "CRONTASK_GIT_PASSWORD"  # noqa: S105 - the variable's name, not a password
# A "!" helper is run by the shell; it answers "get" and ignores "store"/"erase".
_HELPER = (
    f'!f() {{ test "$1" = get && printf "username=%s\\npassword=%s\\n" '
    f'"${USERNAME_VAR}" "${PASSWORD_VAR}"; }}; f'
)

# A user name this short is a name, not a token (tokens run to 20 characters and more).
_TOKEN_MIN = 8

# What git inherits of crontask's environment, and nothing else (see the module's docstring).
# Proxies: git reads these itself (NO_PROXY only with a proxy from them). The ssh agent, a
# Kerberos ticket cache (HTTP Negotiate, ssh GSSAPI) and CA bundles are paths. The loader's,
# with nss_wrapper's: a container under an arbitrary uid gives ssh (which refuses a uid
# without one) its passwd entry that way. PWD: git makes a relative path absolute with it,
# keeping its links (upload_pack's safe.directory names the path as written). Not LANG/LC_*:
# LC_ALL=C overrides them. Of git's own variables, only its CA paths: Debian's git uses
# libcurl-gnutls, which reads none of SSL_CERT_FILE, SSL_CERT_DIR or CURL_CA_BUNDLE, so
# GIT_SSL_CAINFO is the only way to make it trust a private CA there.
INHERITED = frozenset(
    {
        *("PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "PWD"),
        *("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"),
        *("all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"),
        *("SSH_AUTH_SOCK", "KRB5CCNAME", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE"),
        *("KRB5_CONFIG", "KRB5_CLIENT_KTNAME", "KRB5_KTNAME"),  # Kerberos outside /etc, keytabs
        *("LD_LIBRARY_PATH", "LD_PRELOAD", "NSS_WRAPPER_PASSWD", "NSS_WRAPPER_GROUP"),
        *("GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "GIT_PROXY_SSL_CAINFO"),
    }
)


@dataclasses.dataclass(frozen=True)
class Credentials:
    """HTTP basic credentials; neither field is ever shown in a repr."""

    username: str = dataclasses.field(repr=False)
    password: str = dataclasses.field(repr=False)

    def secrets(self) -> list[str]:
        """What git's messages must not show: the password, and the user name when it may be
        a token (``https://TOKEN@host``, ``https://TOKEN:x-oauth-basic@host``). A short user
        name is not one, and replacing it everywhere made ``u`` of ``Couldn't`` a ``***``."""
        return [self.password, *([self.username] if len(self.username) >= _TOKEN_MIN else [])]


def url_credentials(url: str) -> Credentials | None:
    """The user:password embedded in an http(s) URL, if any."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or "@" not in parts.netloc:
        return None
    userinfo = parts.netloc.rpartition("@")[0]
    user, _, password = userinfo.partition(":")
    return Credentials(urllib.parse.unquote(user), urllib.parse.unquote(password))


def _origin(url: str) -> str | None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2]}"


def git_env(
    url: str,
    *,
    credentials: Credentials | None = None,
    ssh_key_file: Path | None = None,
    known_hosts_file: Path | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of every git call for ``url`` (a URL without userinfo)."""
    inherited = os.environ if base is None else base
    # None of git's own variables but its CA paths (GIT_DIR, GIT_SSH_COMMAND,
    # GIT_CONFIG_PARAMETERS, GIT_SSL_NO_VERIFY, ...): they would change what git does behind
    # our back.
    env = {k: v for k, v in inherited.items() if k in INHERITED}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="",  # empty, not unset: stops git falling back to SSH_ASKPASS
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_ATTR_NOSYSTEM="1",
        LC_ALL="C",
    )
    env["GIT_SSH_COMMAND"] = shlex.join(_ssh_command(ssh_key_file, known_hosts_file))
    env["GIT_SSH_VARIANT"] = "ssh"
    origin = _origin(url)
    if credentials is not None and origin is not None:
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0=f"credential.{origin}.helper",
            GIT_CONFIG_VALUE_0=_HELPER,
        )
        env[USERNAME_VAR] = credentials.username
        env[PASSWORD_VAR] = credentials.password
    return env


def _ssh_command(ssh_key_file: Path | None, known_hosts_file: Path | None) -> list[str]:
    """ssh's command line (run by a shell: ``git_env`` quotes the paths). Keepalives: a server
    that stops answering ends the connection after 4 x 15 s unanswered, also when this process
    died without killing git (none of git's own deadlines covers ssh)."""
    ssh = ["ssh", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=15"]
    ssh += ["-o", "ServerAliveCountMax=4"]
    if ssh_key_file is not None:
        ssh += ["-i", str(ssh_key_file), "-o", "IdentitiesOnly=yes"]
    if known_hosts_file is not None:
        ssh += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts_file}"]
    return ssh
