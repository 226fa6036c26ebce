"""The HTTP client of the commands that talk to a running crontask (``tasks``, ``trigger`` and
``members`` in :mod:`~reconciler.cli.remote`, ``runs --server``, ``plan --server``): one API
call, or every page of a list.

Where and as whom: ``--server URL``, else ``$CRONTASK_SERVER``, else ``http://127.0.0.1:8080``;
``$CRONTASK_TOKEN``, when set, is sent as a bearer token (read by
:mod:`~reconciler.cli.client_env`, with ``$CRONTASK_TIMEOUT``). Every failure is a
:class:`RemoteError` whose ``str()`` is one line (from the problem+json body, when the API
answered an error: then a :class:`~reconciler.cli.answers.RemoteProblem`, with its status,
problem type and ``Retry-After``).

The server is not trusted to behave, so that one which does not cannot hang, flood or fool
the terminal: a request has ``client_env.TIMEOUT_SECONDS`` in all (``$CRONTASK_TIMEOUT`` changes
it), not per read; an answer longer than :data:`MAX_ANSWER_BYTES` (one object:
:data:`MAX_OBJECT_BYTES`) or of more JSON values than :data:`MAX_OBJECT_VALUES` is refused, as
what it would take once parsed is not its size (:mod:`~reconciler.cli.answers`); an answer of an
unexpected shape, a list that hands back a ``continue`` token it gave before or that grows
past :data:`MAX_ITEMS` items is a :class:`RemoteError`; and an error line made from an answer
goes through :func:`~reconciler.cli.terminal.printable`. The deadline covers resolving the
server's name too (:mod:`~reconciler.resolver`). A list, every page of it, has
:data:`LIST_TIMEOUT_FACTOR` times a request's time in all and :data:`MAX_LIST_BYTES` of answers
in all, and :data:`MAX_LIST_VALUES` JSON values: a server handing out page after large page,
each under the bounds of one answer, would otherwise fill the client's memory and the terminal.
A page refused as longer than one answer may be is asked for again with half as many items,
down to one, and the pages after it are of that size: a server before 0.4 bounds a runs page
by its count alone, and 1 000 runs with long messages were a 128 MB answer.

Whose credentials go where: a loopback server (``127.0.0.0/8``, ``::1``, ``localhost``, and the
other spellings of this machine: ``127.1``, ``0.0.0.0``; not ``localhost.`` nor ``127.0.0.1.``,
which the resolver looks up in DNS) is asked directly, never through the proxy ``$HTTP_PROXY``
or ``$ALL_PROXY`` names (as Go's ``ProxyFromEnvironment`` does), so that the token stays on the
machine; any other goes through it, ``$NO_PROXY`` excepted. A user name in the server's URL and
``$CRONTASK_TOKEN`` together are warned of (httpx sends the URL's Basic credentials instead of
the token), as is a credential sent over plain ``http://`` to another machine, once a command
however many requests it makes (:mod:`~reconciler.cli.credentials`).

A TLS failure (a certificate that does not verify) is said as such, not as a server that cannot
be reached: the server is there, and the fix is the certificate or ``$SSL_CERT_FILE``
(:mod:`~reconciler.cli.client_tls` words it). A request that timed out or broke says whether it
was sent, and the proxy that carried it (:mod:`~reconciler.cli.client_failures`).
"""

from __future__ import annotations

import os
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import quote, urlsplit

from reconciler.cli.answers import RemoteError as RemoteError
from reconciler.cli.answers import (
    RemoteProblem,
    decode,
    json_values,
    object_list,
    problem_line,
    problem_type,
    retry_after,
)
from reconciler.cli.client_env import TIMEOUT_SECONDS, default_server, default_timeout
from reconciler.cli.client_failures import Progress, failed, timed_out
from reconciler.cli.client_tls import ssl_words
from reconciler.cli.credentials import TOKEN_ENV, check_credentials, is_loopback
from reconciler.cli.terminal import printable
from reconciler.core.urls import redact_url
from reconciler.sources.limits import MIB, format_size

if TYPE_CHECKING:
    from collections.abc import Coroutine

    import httpx

MAX_ANSWER_BYTES: Final = 64 * MIB  # a page of 1000 tasks is a few MiB
# An answer that is one object (members, trigger, next KEY): a task's resource is at most a few
# MiB of JSON. `runs --id` has MAX_ANSWER_BYTES: 101 attempts of 64 KiB of output, escaped.
MAX_OBJECT_BYTES: Final = 16 * MIB
# JSON values (answers.json_values): an object of an answer costs at most some 64 bytes parsed
# (an empty dict), where the bytes bound it to 3; a real task is some 90 values.
MAX_OBJECT_VALUES: Final = 1_000_000
PAGE_MAX: Final = 1000  # the largest page both lists serve
MAX_PAGES: Final = 10_000
MAX_ITEMS: Final = 1_000_000  # in one list, all pages together
# A list's answers together, so that endless pages each under MAX_ANSWER_BYTES cannot fill the
# client's memory or the terminal: 4 000 tasks whose commands are 60 KiB each (tasks of a usual
# size, about 1 KiB, meet MAX_LIST_VALUES first).
MAX_LIST_BYTES: Final = 4 * MAX_ANSWER_BYTES
# A list's values, all pages together: some 160 000 tasks of a usual size (97 values each, as
# counted), which take some 730 MB once parsed. A server that makes every value an object and
# every string cost 4 bytes a character took the client to 2.2 GB (2.7 GB with --json), where
# MAX_LIST_BYTES of `{}` took 6.5 GB.
MAX_LIST_VALUES: Final = 16_000_000
LIST_TIMEOUT_FACTOR: Final = 10  # a whole list has 10 requests' time (100 s by default)
# The codings an answer may come in, one layer (zlib's wbits for each), which :meth:`_Api._read`
# decodes under the answer's bound: httpx decodes every layer a server stacks, each chunk whole,
# before a byte can be counted, and 3 MiB of "gzip, gzip" took 6 GB and 46 s. None is asked for.
_CODINGS: Final = {"gzip": 31, "x-gzip": 31, "deflate": 47}  # deflate: a zlib (or gzip) header
_T = TypeVar("_T")


def fetch_tasks(
    server: str | None, token: str | None, params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every task ``GET /api/v1/tasks`` lists with ``params`` (namespace, source, state),
    following ``metadata.continue`` page after page. :class:`RemoteError` on any failure."""
    api = _Api(server or default_server(), token, default_timeout(), MAX_ANSWER_BYTES)
    return _run(_pages(api, "/api/v1/tasks", params or {}, None))


def fetch_runs(
    server: str | None, token: str | None, params: Mapping[str, Any], limit: int
) -> list[dict[str, Any]]:
    """The newest ``limit`` runs ``GET /api/v1/runs`` lists with ``params`` (task, status,
    trigger, since, until - RFC 3339 -; ``None`` values are dropped), following pages.
    :class:`RemoteError` on any failure."""
    query = {k: _param(v) for k, v in params.items() if v is not None}
    api = _Api(server or default_server(), token, default_timeout(), MAX_ANSWER_BYTES)
    return _run(_pages(api, "/api/v1/runs", query, limit))


def fetch_run(server: str | None, token: str | None, run_id: str) -> dict[str, Any]:
    """``GET /api/v1/runs/{id}``: ``{"id", "task", "attempts": [... with output]}``."""
    path = f"/api/v1/runs/{quote(run_id, safe='')}"
    return request(server or default_server(), token, "GET", path, max_bytes=MAX_ANSWER_BYTES)


def request(
    server: str,
    token: str | None,
    method: str,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float | None = None,
    max_bytes: int = MAX_OBJECT_BYTES,
) -> dict[str, Any]:
    """One API call: the JSON object it answered, or :class:`RemoteError` with one clear
    line. It has ``timeout`` seconds in all (default: :func:`default_timeout`) and reads at
    most ``max_bytes`` of the answer, and :data:`MAX_OBJECT_VALUES` JSON values."""
    api = _Api(server, token, timeout or default_timeout(), max_bytes)

    async def call() -> dict[str, Any]:
        async with connect(api.timeout, transport, api.server) as client:
            return await api.call(client, method, path, params)

    return _run(call())


class _AnswerTooLarge(RemoteError):
    """An answer longer than one may be (not a list's answers together): a smaller page of
    the list may be under the bound."""


def _run(call: Coroutine[Any, Any, _T]) -> _T:
    """``call`` run to its end on a loop whose name lookups nothing waits for
    (:mod:`~reconciler.resolver`)."""
    # Here, not at the top: parsing the command line need not load asyncio.
    from reconciler import resolver

    return resolver.run(call)


def connect(
    timeout: float = TIMEOUT_SECONDS,
    transport: httpx.AsyncBaseTransport | None = None,
    server: str | None = None,
) -> httpx.AsyncClient:
    """An HTTP client for :meth:`_Api.call` (one connection for the pages of a list): direct
    for a loopback ``server``, else through the proxy the environment names, if any, as
    ``crontask run``'s requests go (:mod:`~reconciler.httpclient`: a setting it cannot use is
    left out, with a warning on stderr naming the variable, never its value). A CA bundle that
    cannot be read (``$SSL_CERT_FILE``, which httpx loads even for http://) is a
    :class:`RemoteError`."""
    import ssl

    # Here, not at the top: only the client commands pay for httpx.
    from reconciler.httpclient import async_client

    # A proxy set for the world has no business with this machine's own server, nor with its
    # token: a loopback server is asked directly ($SSL_CERT_FILE is still read).
    direct = server is not None and is_loopback(server)
    try:
        return async_client(
            timeout=timeout, transport=transport, direct=direct, warn=_proxy_not_used
        )
    except (OSError, ssl.SSLError) as exc:  # ssl.SSLError is an OSError; named for the reader
        bundle = os.environ.get("SSL_CERT_FILE")
        what = f"$SSL_CERT_FILE ({printable(bundle[:200])})" if bundle else "the CA certificates"
        raise RemoteError(f"cannot read {what}: {ssl_words(exc)}") from None


def _proxy_not_used(variable: str, problem: str) -> None:
    """A proxy setting left out (:func:`~reconciler.httpclient.proxy_routes`), once a command:
    it named the variable and the problem, never the value (a proxy URL may hold a password)."""
    print(f"crontask: warning: ${variable} is not used: {printable(problem)}", file=sys.stderr)


@dataclass(frozen=True)
class _Api:
    """Where and how to call: the server, its token, and the bounds of every request. Its
    credentials are checked as it is made (:func:`check_credentials`, which says a warning
    once a process: ``trigger`` asking again and ``plan --server`` make several)."""

    server: str
    token: str | None
    timeout: float
    max_bytes: int

    def __post_init__(self) -> None:
        check_credentials(self.server, self.token)

    @property
    def shown(self) -> str:
        """The server as messages name it: without the password or token its URL may hold."""
        return redact_url(self.server)

    async def call(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        budget: _Budget | None = None,
    ) -> dict[str, Any]:
        """One request on ``client``: the JSON object it answered, or :class:`RemoteError`.
        httpx's timeout is per read, so a server sending a byte now and then would hold the
        command for ever: the deadline is for all of it. The body takes its bytes from
        ``budget`` too, when given (the pages of one list)."""
        import asyncio

        import httpx

        from reconciler.httpclient import carried_by, location

        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = self.server.rstrip("/") + path
        server = self.shown  # for the messages
        progress = Progress()
        try:
            # Built first, and sent as client.stream() would: a timeout (asyncio's has no
            # request) still has it at hand, and the proxy it went through.
            request = client.build_request(
                method, url, params=params, headers=headers, extensions={"trace": progress.trace}
            )
            async with asyncio.timeout(self.timeout):
                response = await client.send(request, stream=True)
                try:
                    content = await self._read(response, budget)
                    values = self._values(content, budget)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            raise timed_out(request, progress, server, self.timeout) from None
        except httpx.InvalidURL as exc:
            raise RemoteError(f"--server {server!r} is not a URL crontask can use: {exc}") from None
        except httpx.HTTPError as exc:
            raise failed(exc, server, progress.sent) from None
        if response.status_code >= 400:
            readable = values is not None
            status, reason = response.status_code, response.reason_phrase
            line = problem_line(status, reason, content, readable)
            via = carried_by(response.request)
            if status == 407 and via is not None:  # the proxy's answer, not crontask's
                line = f"the proxy {printable(via)} refused the request to {server}: {line}"
            if status == 401:
                line += self._whose_token()
            raise RemoteProblem(
                line,
                status,
                problem_type(content, readable),
                retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code >= 300:
            # Not followed (the token would go along), and no answer: say where it leads.
            where = printable((location(response) or "")[:200]) or "nowhere"
            raise RemoteError(
                f"{server} answered {response.status_code} (a redirect to {where}): give "
                "--server the address it leads to"
            )
        if response.status_code == 204 or not content:
            return {}
        if values is None:
            raise self._too_many(budget is not None)
        return decode(content, server)

    async def _read(self, response: httpx.Response, budget: _Budget | None) -> bytes:
        """The body, up to :attr:`max_bytes` and what is left of ``budget``: a longer one is
        refused as soon as it says so (``Content-Length``) or its bytes go past it."""
        listed = budget is not None and budget.left < self.max_bytes
        limit = min(self.max_bytes, budget.left) if budget is not None else self.max_bytes
        length = response.headers.get("Content-Length", "")
        declared = length.isascii() and length.isdigit()
        if declared and (len(length) > 18 or int(length) > limit):
            raise self._too_long(listed)
        decoder = self._decoder(response)
        chunks: list[bytes] = []
        size = raw_size = 0
        try:
            async for raw in response.aiter_raw():
                raw_size += len(raw)
                # At most one byte past the bound: enough to know that the answer is too long.
                chunk = raw if decoder is None else decoder.decompress(raw, limit - size + 1)
                size += len(chunk)
                if max(size, raw_size) > limit:
                    raise self._too_long(listed)
                chunks.append(chunk)
            if decoder is not None:
                chunks.append(rest := decoder.flush(limit - size + 1))
                if (size := size + len(rest)) > limit:
                    raise self._too_long(listed)
        except zlib.error:
            raise RemoteError(
                f"{self.shown} answered a body its Content-Encoding does not decode"
            ) from None
        if budget is not None:
            budget.left -= size
        return b"".join(chunks)

    def _values(self, content: bytes, budget: _Budget | None) -> int | None:
        """How many JSON values ``content`` holds (taken from ``budget``, when given), or
        ``None`` when more than it has left or than :data:`MAX_OBJECT_VALUES`."""
        bound = budget.values if budget is not None else MAX_OBJECT_VALUES
        # A list's page is counted without its strings: charged the fast count, a page whose
        # commands hold a CSV took from the list's budget values that are not there.
        values = json_values(content, 0 if budget is not None else bound)
        if values > bound:
            return None
        if budget is not None:
            budget.values -= values
        return values

    def _whose_token(self) -> str:
        """What a ``401`` line adds: where the token comes from (``$CRONTASK_TOKEN``), or
        nothing when the URL's own credentials were sent (a proxy's Basic ones)."""
        parts = urlsplit(self.server)
        if parts.username or parts.password:
            return ""
        if self.token:
            return f"; the token sent is ${TOKEN_ENV}'s"
        return f"; no token was sent: set ${TOKEN_ENV}"

    def _too_many(self, listed: bool) -> RemoteError:
        if listed:
            return RemoteError(
                f"{self.shown} answered a list of more than {MAX_LIST_VALUES:,} JSON values in "
                "all (refused)"
            )
        return RemoteError(
            f"{self.shown} answered JSON of more than {MAX_OBJECT_VALUES:,} values (refused)"
        )

    def _decoder(self, response: httpx.Response) -> zlib._Decompress | None:
        """What decodes the answer's one layer of gzip or deflate (``None``: it has none); a
        :class:`RemoteError` for any other coding, or more than one."""
        named = response.headers.get_list("Content-Encoding", split_commas=True)
        codings = [c.strip().lower() for c in named if c.strip().lower() not in ("", "identity")]
        if not codings:
            return None
        if len(codings) > 1 or codings[0] not in _CODINGS:
            said = printable(", ".join(codings))[:80]
            raise RemoteError(
                f"{self.shown} answered in a Content-Encoding crontask does not read: {said}"
            )
        return zlib.decompressobj(_CODINGS[codings[0]])

    def _too_long(self, listed: bool) -> RemoteError:
        if listed:
            return RemoteError(
                f"{self.shown} answered a list of more than {format_size(MAX_LIST_BYTES)} "
                "in all (refused)"
            )
        return _AnswerTooLarge(
            f"{self.shown} answered more than {format_size(self.max_bytes)} (refused)"
        )


@dataclass
class _Budget:
    """The bytes and the JSON values the answers of one list may still take, all its pages
    together."""

    left: int
    values: int


async def _pages(
    api: _Api, path: str, params: Mapping[str, str], limit: int | None
) -> list[dict[str, Any]]:
    """The items of a list, page by page, until ``limit`` items or the last page. A server
    that never ends a list cannot keep the client forever: a ``continue`` token it handed out
    before is an error at once, and so are more than :data:`MAX_PAGES` pages,
    :data:`MAX_ITEMS` items, :data:`MAX_LIST_BYTES` of answers, or more time than
    :data:`LIST_TIMEOUT_FACTOR` requests have."""
    import asyncio

    seconds = api.timeout * LIST_TIMEOUT_FACTOR
    try:
        # Around every page: each request's own deadline cannot bound how many come.
        async with asyncio.timeout(seconds):
            return await _every_page(api, path, params, limit)
    except TimeoutError:
        raise RemoteError(
            f"crontask at {api.shown} did not end the list within {seconds:g}s"
        ) from None


async def _every_page(
    api: _Api, path: str, params: Mapping[str, str], limit: int | None
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    wanted = limit
    smaller: int | None = None  # the page size since a page was refused as too large
    # Since a page came back shorter than asked with more to follow (the server left out what
    # it cannot read: a newer crontask's records), pages of the server's size are asked for:
    # past 3 000 such runs, --limit 5 asked 600 pages of 5 (MAX_PAGES is 10 000).
    short = False
    seen: set[str] = set()
    cursor: dict[str, str] = {}
    budget = _Budget(MAX_LIST_BYTES, MAX_LIST_VALUES)
    async with connect(api.timeout, None, api.server) as client:
        for _ in range(MAX_PAGES):
            size = _page_size(None if short else wanted, smaller)
            page_size = {} if size is None else {"limit": str(size)}
            query = {**params, **page_size, **cursor}
            try:
                body = await api.call(client, "GET", path, query, budget)
            except _AnswerTooLarge:
                if size == 1:
                    raise
                smaller = (size or PAGE_MAX) // 2  # the same page again, half as long
                continue
            if not isinstance(body.get("items"), list):
                raise RemoteError(f"{api.shown} answered a list without items")
            given = object_list(body["items"], api.server, "items")
            short = short or (size is not None and len(given) < size)
            items = given[:wanted]
            if len(found) + len(items) > MAX_ITEMS:
                raise RemoteError(f"{api.shown} answered a list of more than {MAX_ITEMS} items")
            found.extend(items)
            if wanted is not None:
                wanted -= len(items)
            metadata = body.get("metadata")
            following = metadata.get("continue") if isinstance(metadata, dict) else None
            if not following or wanted == 0:
                return found
            if not isinstance(following, str):
                raise RemoteError(f"{api.shown} answered a continue token that is not a string")
            if following in seen:
                raise RemoteError(f"{api.shown} answered a continue token it had given before")
            seen.add(following)
            cursor = {"continue": following}
    raise RemoteError(f"{api.shown} answered more than {MAX_PAGES} pages")


def _page_size(wanted: int | None, smaller: int | None) -> int | None:
    """The ``limit`` to ask a page for: what is still wanted, at most :data:`PAGE_MAX` and the
    size pages shrank to; ``None`` (the server's default) when neither bounds it."""
    bounds = [n for n in (wanted, smaller) if n is not None]
    return min(*bounds, PAGE_MAX) if bounds else None


def _param(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
