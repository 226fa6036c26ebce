"""URLs as they may be shown (in status lines, logs, run messages and the API), and the URLs
an http task's client can send to (whose problems are said without quoting a password).

Pure string work (the standard library only), so every layer uses these same rules.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from urllib.parse import SplitResult

REDACTED = "***"
_DB_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_PATH = re.compile(r"[^@=:\s]+")
# A URL with an authority: urlsplit finds its userinfo, and at_after_host says if it may not.
_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/]")
# A user:password@ with no authority around it, as git reads such a text: an scp-like
# address whose "host" is the user name (oauth2:TOKEN@host:path, the password may hold a "/"),
# told from an scp-like path holding an "@" (host:org/r@v1.git) and from a mailto: (no ":"
# after its host) by the host and ":" after the "@"; or a git URL scheme with no authority
# after it (https:/u:p@host/r.git, https:u:p@host, https:///u:p@host), which no git address
# has. An scp-like address has no ":" before its "@" (git@host:org/r.git), and a local path a
# "/" before its first ":" (/srv/a:b@c). No ":" in the user name: the match is tried at the
# first ":" only, each "@" once (a pattern tried at every ":" took 184 s for 160 KB).
_LOOSE_PASSWORD = re.compile(r"[^/@:]+:(?:[^@]*@)+[^/@:]*:")
# The same with no ":" after the host (deploy:TOKEN@host/path: https:// left out): git reads
# "deploy" as the host, the token as the start of the path. Told from an scp-like address by
# the "@" before any "/" of its path; one such path (host:r@v1.git) is caught with it. A token
# may hold a "/" or a ":" (base64 ones do) when a folder follows the host: told from an
# scp-like path by that folder after its last "@" (host:org/r@v1.git passes, as does an
# absolute path, host:/srv/a@b/r.git; host:org/team@corp/r.git is caught). A URL
# (mailto:ops@host) reads so too: for --git only (git_password).
_LOOSE_PASSWORD_PATH = re.compile(r"[^/@:]+:(?:[^/@:]*@[^/@:]*(?:/|$)|(?!/)(?:[^@]*@)+[^/@:]+/)")
_SCHEME_UNSLASHED = re.compile(r"(?:https?|ssh|git|ftps?):(?!//[^/])[^@]*@", re.IGNORECASE)


def redact_db_url(url: str) -> str:
    """A ``--db`` URL as :func:`redact_url` shows it. A text without a scheme and ``://`` is
    shown only if it reads as a file path (``runs.db``, ``/var/lib/crontask/runs.db``: a ``/``
    or a ``.``, and no ``@``, ``=``, ``:`` or space); else ``***``: ``user:password@host/db``
    without its scheme (``user:`` reads as a scheme), libpq's ``host=db password=...``, or a
    password pasted in its place would be shown whole."""
    if _DB_SCHEME.match(url):
        return redact_url(url)
    return url if looks_like_path(url) else REDACTED


def looks_like_path(text: str) -> bool:
    """Whether a ``--db`` without a scheme reads as a file path, not credentials."""
    return _PATH.fullmatch(text) is not None and ("/" in text or "." in text)


def loose_password(text: str) -> bool:
    """Whether ``text`` holds a ``user:password@`` that is no URL's userinfo: no ``//`` right
    after a scheme before it (``oauth2:TOKEN@host:path``, ``https:/deploy:TOKEN@host/r.git``).
    urlsplit takes ``oauth2:`` or ``https:`` for a scheme with no host, and git the text before
    the first ``:`` for the host: neither finds the password, so neither hides it. As for
    ``--db`` (:func:`redact_db_url`), such a text is hidden; an scp-like address
    (``git@host:org/r.git``) and a local path are not caught."""
    if _AUTHORITY.match(text) is not None:
        return False
    return any(p.match(text) for p in (_LOOSE_PASSWORD, _SCHEME_UNSLASHED))


def git_password(text: str) -> bool:
    """Whether a ``--git`` text holds a password no URL rule finds: a :func:`loose_password`, or
    an scp-like address with a ``user:password@`` for its path's start (``deploy:TOKEN@host/r``:
    ``https://`` left out; git takes ``deploy`` for the host). Not for URLs at large: a
    redirect's ``mailto:ops@host`` reads so, and holds no password."""
    if loose_password(text):
        return True
    return _AUTHORITY.match(text) is None and _LOOSE_PASSWORD_PATH.match(text) is not None


def redact_url(url: str) -> str:
    """``url`` without the secrets it may carry, for status lines, logs and run messages.

    http(s): the whole userinfo goes (a token is often passed as the user name). Other schemes
    (``ssh://git@host/...``) keep the user name, which is not a secret, and lose any password.
    Every query value becomes ``***`` and its name stays (``?token=***``), so the reader still
    sees which parameters were given; an item without ``=`` may itself be the secret and is
    replaced whole, and so is a fragment. scp-like addresses (``git@host:org/repo``) and local
    paths (no scheme) are returned unchanged; a text with a :func:`loose_password` is shown
    from its host on (``***@host:path``).

    Never raises. A URL ``urlsplit`` refuses (a ``[`` or ``]`` in a password makes it look for
    an IPv6 host, and its error quotes what it found) loses its whole userinfo, whatever the
    scheme; if the rest still cannot be split, it is shown as ``***`` whole. A URL with an
    ``@`` after its authority (:func:`at_after_host`) is ambiguous: ``https://tok3n/S3CRET@host``
    may be a user name with an unencoded ``/`` (urlsplit's host ``tok3n``, a secret), and in
    ``https://ops:S3CRET?x@host`` the password is urlsplit's host. So neither its authority nor
    its path is shown: ``https://***``, then its query and fragment as above.
    """
    return _redacted(url, keep_path=True)


def redact_request_url(url: str) -> str:
    """An http action's ``url`` as run messages, logs and callers who may not change the task
    show it: :func:`redact_url`'s rules, and no path, which webhooks make their secret
    (``hooks.slack.com/services/T../B../<secret>``, ``discord.com/api/webhooks/<id>/<token>``,
    ``api.telegram.org/bot<token>/sendMessage``: the first segment is no safer than the rest).
    A path other than ``/`` is shown as ``/***``; the method, host, port and the names of the
    query's parameters stay, and the task's key says which endpoint it is. Never raises."""
    return _redacted(url, keep_path=False)


def _redacted(url: str, *, keep_path: bool) -> str:
    if loose_password(url):
        return _without_loose_userinfo(url)
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        url = _without_userinfo(url)
        try:
            parts = urllib.parse.urlsplit(url)
        except ValueError:
            return REDACTED
    if not parts.scheme:
        # A local path or an scp-like address; but //user:password@host/x has an authority.
        return _without_userinfo(url) if parts.netloc else url
    netloc, path = parts.netloc, parts.path
    if keep_path and netloc and at_after_host(parts):
        # Not for redact_request_url: it shows the host its client contacts (the one urlsplit
        # finds, as httpx does), and a path such as /users/ops@example.com is common there.
        netloc, path = REDACTED, ""
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if parts.scheme.lower() in ("http", "https"):
            netloc = hostport
        else:
            netloc = f"{userinfo.partition(':')[0]}@{hostport}"
    items = "&".join(_redact_item(item) for item in parts.query.split("&"))
    # Not urlunsplit: for a scheme it does not know, it drops an empty authority's "//", and
    # sqlite:////var/lib/runs.db came out as sqlite://var/lib/runs.db (a host "var").
    authority = f"//{netloc}" if netloc or url.partition(":")[2].startswith("//") else ""
    query = f"?{items}" if items else ""
    fragment = f"#{REDACTED}" if parts.fragment else ""
    path = path if keep_path or path in ("", "/") else f"/{REDACTED}"
    return f"{parts.scheme}:{authority}{path}{query}{fragment}"


def _without_userinfo(url: str) -> str:
    """``url`` with everything before the last ``@`` of its authority cut, found as
    ``urlsplit`` finds the authority: from ``//`` to the first ``/``, ``?`` or ``#``."""
    head, sep, rest = url.partition("//")
    if not sep:
        return url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return f"{head}//{rest[:end].rpartition('@')[2]}{rest[end:]}"


def _without_loose_userinfo(url: str) -> str:
    """``***@`` and what follows the userinfo of a :func:`loose_password` text. The userinfo
    runs to the last ``@`` before the ``/`` that follows its first one (a password may hold an
    unencoded ``@``): less than the text has, never more."""
    first = url.index("@")
    slash = url.find("/", first)
    end = len(url) if slash < 0 else slash
    return f"{REDACTED}@{url[:end].rpartition('@')[2]}{url[end:]}"


def at_after_host(parts: SplitResult) -> bool:
    """Whether a URL split as ``parts`` has an ``@`` after what ``urlsplit`` took for its
    authority: what it took for the host (or a user name before it) may then be the start of
    a user name or password with an unencoded ``/``, ``?`` or ``#``
    (``https://tok3n/S3CRET@host``, ``https://ops@tok3n/S3CRET@host``), which ends the
    authority early."""
    return any("@" in part for part in (parts.path, parts.query, parts.fragment))


def _redact_item(item: str) -> str:
    if not item:
        return item
    name, sep, _ = item.partition("=")
    return f"{name}={REDACTED}" if sep else REDACTED


_IPV4_STYLE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")

# What a request URL's problems say instead of quoting it: what urlsplit took for the host or the
# port is, when a password holds one of these characters unencoded, a piece of the password.
ENCODE_USERINFO = "in a user name or password, write '/' '?' '#' '[' ']' as %2F %3F %23 %5B %5D"
UNREADABLE = f"its host or port cannot be read ({ENCODE_USERINFO}; a port is at most 65535)"


def request_url_problem(url: str) -> str | None:
    """Why the HTTP action's client could not send to ``url`` (``None``: it can), in words that
    quote none of the URL's user name or password.

    ``urlsplit``'s errors quote what it took for the host or the port, and an unencoded ``/``,
    ``?`` or ``#`` ends the authority early (``https://u:p/ss@host`` has the "port" ``p``),
    while a ``[`` or ``]`` makes it look for an IPv6 host (``https://u:[pw]@host``): those
    errors are replaced by fixed words. The host is quoted by :func:`host_problem`, except when
    an ``@`` after it says that it may be the start of such a user name."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # ValueError: not a number, or outside 0-65535
    except ValueError:
        return UNREADABLE
    if not parts.hostname or port == 0:
        return "no host, or port 0"
    if any(ord(c) < 0x20 or c == "\x7f" for c in url):
        return "it holds a control character"
    problem = host_problem(parts)
    if problem is not None and at_after_host(parts):
        return f"its host is no valid IP address or IDNA name ({ENCODE_USERINFO})"
    return problem


def host_problem(parts: SplitResult) -> str | None:
    """What the HTTP action's client (httpx) refuses in a host when it sends, by its own rules
    (standard library only): a dotted-quad that is no IPv4 address, a bracketed host that is
    no IPv6 one, and, in a host it decodes (one that starts with ``xn--``), an ``xn--`` label
    that is no Punycode. IDNA's rules on the decoded characters are left to the run: they
    need the ``idna`` package, and its refusal is then one line, not a definition error."""
    host = parts.hostname
    assert host is not None  # checked by the caller
    if parts.netloc.rpartition("@")[2].startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"[{host}] is not an IPv6 address"
    elif _IPV4_STYLE.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"{host} is not an IPv4 address"
    elif host.startswith("xn--"):
        for label in host.split("."):
            if label.startswith("xn--") and not _a_label(label[4:]):
                return f"{label} is not a valid IDNA label (xn--, then Punycode)"
    return None


def _a_label(code: str) -> bool:
    # As the idna package checks one before its characters: there, decodes, and is the
    # encoding of what it decodes to (else two spellings would name one host).
    if not code or code.endswith("-"):
        return False
    try:
        return code.encode("ascii").decode("punycode").encode("punycode") == code.encode()
    except UnicodeError:
        return False


def page_base(external_url: str | None) -> str:
    """The path of ``external_url`` (``--external-url``), without its last ``/``: where a
    reverse proxy serves crontask's pages (``https://example.com/crontask`` gives
    ``/crontask``; "" at the root). Quoted as a URL's path, as the links that begin with it
    are."""
    path = urllib.parse.urlsplit(external_url or "").path.rstrip("/")
    return urllib.parse.quote(path, safe="/%:@!$&'()*+,;=-._~")
