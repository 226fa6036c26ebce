"""The HTTP action: one request per attempt (httpx, through ``reconciler.httpclient``).

Outcome rules: a response whose status is in ``expectStatus`` succeeds, any other status
fails (reason ``UnexpectedStatus``); a connection error, a TLS error or a request timeout
fails with a message that says which (reason ``RequestFailed``). The response status is
recorded as the run's exit code and the head of the body as its output (at most
``output_limit`` bytes once decoded, see ``output.bounded_text``), followed by a truncation
marker when more came or was to come (how many bytes more: per ``Content-Length``); a body
that breaks off (the connection closed or reset before its end) fails the run with both kept,
and so does a run stopped (``Replace``, shutdown, another replica) once the head has come.
Such an outcome whose status ``expectStatus`` accepts is not retried: the server took the
request, and a retry would send it again (``Outcome.retryable``).
A redirect is not followed: a ``3xx`` is a status as any other, whatever its ``Location``
holds (``mailto:``, a port that is no number), and its message names that ``Location`` as the
task's URL is shown. Header values from ``valueFrom`` are read at each
attempt (a rotated secret is picked up) and never appear in messages or logs; what the run
keeps of a response (body, reason phrase, a protocol error's quote) has them, the URL's
hidden parts and the proxy's credentials (its ``Proxy-Authorization``) replaced by ``***``
(``http_secrets``), for a receiver or a proxy may echo the request.
``timeout`` bounds the whole attempt, the body included: a server sending a byte now and then
cannot hold it for longer. A response whose body is not complete by then times out with its
status kept as the exit code. What had come by then is taken all the same, even if crontask
could not read it in time (stopped by SIGSTOP, a frozen VM, a loop held up): only a wait for
what has not come is cut (``http_deadline``), so such an answer is not retried, its request
not sent again.

A ``valueFrom.file`` is read in a thread, with the secret-file rules (a regular file of at most
a header value's 32 KiB; a FIFO or a device is refused unopened), within the attempt's
``timeout``. A read that hangs (a mount that no longer answers) cannot be interrupted: its
thread is a daemon nobody joins, and it is the only read of that file until it ends; the
attempts that want the file meanwhile wait for it, up to their own deadlines.

Each attempt has its own client, so nothing (a connection, a cookie) carries over from one run to
the next; they share one TLS context, built once: loading the CA bundle takes ~45 ms on the event
loop and ~1 MiB, too much per run when many tasks are due together. The client is
``httpclient``'s, as a notification's is: proxies from crontask's environment (one httpx cannot
use is left out, said once at start), and a response that brings no final status in its first
``httpclient.HEAD_MAX`` bytes (a stream of ``100 Continue``) fails the attempt (``RequestFailed``)
rather than keep the event loop parsing until the timeout.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import weakref
from collections.abc import Mapping
from pathlib import Path

import h11
import httpx
import idna

from reconciler import httpclient
from reconciler import trust as http_trust
from reconciler.core.actions import HEADER_VALUE, HttpAction
from reconciler.core.desired import Definition
from reconciler.core.fields import MAX_TEXT
from reconciler.core.runs import RunRecord, RunStatus, truncation_marker
from reconciler.core.urls import redact_request_url
from reconciler.resolver import abandonable
from reconciler.runner import http_deadline, http_text
from reconciler.runner.base import Outcome, run_environment
from reconciler.runner.base import failed as _failed
from reconciler.runner.http_secrets import Secrets, header_secrets, proxy_secrets, url_secrets
from reconciler.runner.output import bounded_text
from reconciler.secretfile import read_secret_file


class HeaderValueError(Exception):
    """A header value could not be read or is not a valid one; the message names the header,
    never its value. ``timed_out``: its file was not read by the deadline (the message is to be
    followed by how long that was)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


async def resolve_headers(
    action: HttpAction, environ: Mapping[str, str], *, deadline: float | None = None
) -> list[tuple[str, str]]:
    """The headers of ``action`` as (name, value), one for each it gives, in its order (a name
    given twice is sent twice, as HTTP allows), ``valueFrom`` read now; files are read by
    ``deadline`` (the loop's clock). Raises :class:`HeaderValueError`."""
    headers: list[tuple[str, str]] = []
    for header in action.headers:
        if header.value is not None:
            headers.append((header.name, header.value))
            continue
        source = header.value_from
        assert source is not None  # the model guarantees exactly one of value, valueFrom
        if source.env is not None:
            if source.env not in environ:
                raise HeaderValueError(
                    f"header {header.name!r}: environment variable {source.env} is not set"
                )
            # As a file's: a space or newline at an end is the way it was set, not the value.
            headers.append((header.name, environ[source.env].strip()))
            continue
        assert source.file is not None
        try:
            async with asyncio.timeout_at(deadline):
                data = await _read_file(source.file)
        except TimeoutError:
            raise HeaderValueError(
                f"header {header.name!r}: {source.file} not read", timed_out=True
            ) from None
        except ValueError as err:  # read_secret_file's: "not a regular file: not read", ...
            raise HeaderValueError(f"header {header.name!r}: {source.file}: {err}") from None
        # Not ASCII: U+FFFD, which the check below refuses without quoting anything.
        headers.append((header.name, data.decode("utf-8", errors="replace").strip()))
    for name, value in headers:
        # httpx would refuse it with an error that quotes the value (a newline, a space at an
        # end) or raise UnicodeEncodeError, whose repr holds the value (non-ASCII): check first,
        # say nothing of it.
        if not HEADER_VALUE.fullmatch(value):
            raise HeaderValueError(
                f"header {name!r}: the value is not a valid header value "
                "(printable ASCII, spaces and tabs only, and neither at an end)"
            )
    return headers


# The reads of header files in flight, per loop (tests run several loops) and per path.
_reads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Future[bytes]]] = (
    weakref.WeakKeyDictionary()
)


async def _read_file(path: str) -> bytes:
    """The bytes of the header file ``path`` (at most a header value's length), read in a
    daemon thread; an attempt that stops waiting leaves the read to finish alone. While one
    read of a path is under way, others wait for it rather than start a thread each: a file
    on a hung mount holds one thread, not one per attempt of every task that names it."""
    reads = _reads.setdefault(asyncio.get_running_loop(), {})
    read = reads.get(path)
    if read is None:
        read = reads[path] = abandonable(functools.partial(read_secret_file, Path(path), MAX_TEXT))
        read.add_done_callback(functools.partial(_read_ended, reads, path))
    # Shielded: one attempt's deadline must not cancel the read that others wait for.
    return await asyncio.shield(read)


def _read_ended(
    reads: dict[str, asyncio.Future[bytes]], path: str, read: asyncio.Future[bytes]
) -> None:
    if reads.get(path) is read:
        del reads[path]
    if not read.cancelled():
        read.exception()  # retrieved: every attempt that wanted it may have given up


class HttpRun:
    """One attempt of an HTTP action; the same shape as ``CommandRun`` (run, stop)."""

    def __init__(
        self,
        action: HttpAction,
        *,
        env: Mapping[str, str],
        extra_headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        output_limit: int = 64 * 1024,
        proxies: tuple[frozenset[str], frozenset[str]] | None = None,
    ) -> None:
        """``proxies``: what to hide of the proxies' credentials (``proxy_secrets``), read
        from the environment's proxies now if not given."""
        self.action = action
        self.env = dict(env if env is not None else os.environ)
        self.extra_headers = dict(extra_headers or {})
        # The run's timeoutSeconds bounds the whole attempt; the action's own bounds the request.
        self.timeout = min(t for t in (timeout, action.timeout_seconds) if t is not None)
        self.output_limit = output_limit
        self._task: asyncio.Task[Outcome] | None = None
        self._stop_reason: str | None = None
        # What a response may quote of the request that viewers may not read (see Secrets),
        # the proxy's credentials included; the valueFrom values join once read. The URL's
        # and the proxy's parts, few, rank ahead of those values, which a task may have many
        # of: their long forms pushed a webhook's path out of the forms kept.
        anywhere, words = url_secrets(action.url)
        proxy_anywhere, proxy_words = _proxy_secrets() if proxies is None else proxies
        anywhere, words = anywhere | proxy_anywhere, words | proxy_words
        self._secrets = Secrets(anywhere, words, first=anywhere | words)
        # The request as sent (a request hook): asyncio's deadline, before httpx's timeout,
        # raises an error that carries none, and the proxy it went through is read from it.
        self._sent: httpx.Request | None = None
        self._response: httpx.Response | None = None  # once its head has arrived
        self._body = bytearray()  # what came of its body (_read_head)

    def stop(self, reason: str) -> None:
        self._stop_reason = self._stop_reason or reason
        if self._task is not None:
            self._task.cancel()

    async def run(self) -> Outcome:
        if self._stop_reason is not None:
            return _failed(self._stop_reason, f"stopped before it started: {self._stop_reason}")
        self._task = asyncio.get_running_loop().create_task(self._request())
        try:
            return await self._task
        except asyncio.CancelledError:
            reason = self._stop_reason
            if reason is None:
                raise  # cancelled from outside: propagate
            if self._response is None:
                # As every outcome of a request: what it was to, the URL as shown (no
                # credentials, no path, no query values) and the proxy it went through.
                action, via = self.action, http_text.through(self._sent)
                shown = f"{action.method} {redact_request_url(action.url)}"
                return _failed(reason, f"{shown}: no response, stopped: {reason}{via}")
            # As a timeout: the status and what came of the body are kept.
            what = f"not complete, stopped: {reason}"
            return self._incomplete(self._response, self._body, RunStatus.FAILED, reason, what)

    async def _request(self) -> Outcome:
        action = self.action
        shown = redact_request_url(action.url)  # stored and shown: no credentials, no path
        deadline = asyncio.get_running_loop().time() + self.timeout
        headers = await self._headers(deadline)
        if isinstance(headers, Outcome):
            return headers
        problem = http_trust.trust().problem
        if problem is not None and action.url[:8].lower() == "https://":
            return _failed(
                "RequestFailed", f"{action.method} {shown}: cannot verify the server: {problem}"
            )
        secrets, body = self._secrets, self._body
        try:
            # The deadline is for the whole request and its body (httpx's timeout is per
            # read), and takes an answer that came while crontask was stopped (http_deadline).
            async with (
                http_deadline.Deadline(deadline, self.timeout) as cut,
                httpclient.async_client(
                    verify=http_trust.trust().context,
                    # None of httpx's own: its read timeout, whose timer runs in the same
                    # round as the deadline's, would cut the answer the deadline takes.
                    timeout=math.inf,
                    # The body is kept as sent, so ask for it uncompressed (a task's own
                    # Accept-Encoding header wins).
                    headers={"Accept-Encoding": "identity"},
                    event_hooks={"request": [self._sending]},
                ) as client,
                client.stream(
                    str(action.method),
                    action.url,
                    headers=headers,
                    content=action.body.encode() if action.body is not None else None,
                    extensions={"trace": cut.trace},
                ) as response,
            ):
                self._response = response
                await _read_head(response, self.output_limit, body)
        except (httpx.TimeoutException, TimeoutError) as err:
            within = f"within {self.timeout:g}s"
            if self._response is None:
                via = http_text.through(err if isinstance(err, httpx.HTTPError) else self._sent)
                message = f"{action.method} {shown}: no response {within}{via}"
                return _failed("DeadlineExceeded", message, status=RunStatus.TIMED_OUT)
            return self._incomplete(
                self._response,
                body,
                RunStatus.TIMED_OUT,
                "DeadlineExceeded",
                f"not complete {within}",
            )
        except httpx.HTTPError as err:
            described = http_text.describe(err, secrets)
            if self._response is None:
                message = f"{action.method} {shown}: {described}{http_text.through(err)}"
                return _failed("RequestFailed", message)
            # The connection closed or broke in the body.
            what = f"cut short: {described}"
            return self._incomplete(self._response, body, RunStatus.FAILED, "RequestFailed", what)
        # What the definition passed but the client refuses to send: a host name IDNA refuses
        # (core checks what it can without the idna package), a request h11 cannot frame.
        except (httpx.InvalidURL, idna.IDNAError) as err:
            return _failed(
                "RequestFailed",
                f"{action.method} {shown}: not a URL a request can go to: "
                f"{http_text.clip(str(err), secrets)}",
            )
        except h11.LocalProtocolError as err:
            return _failed(
                "RequestFailed",
                f"{action.method} {shown}: the request cannot be sent: "
                f"{http_text.clip(str(err), secrets)}",
            )
        return self._answered(response, body)

    async def _headers(self, deadline: float) -> list[tuple[str, str]] | Outcome:
        """The request's headers, `valueFrom` ones read by `deadline` and added to what is
        hidden; or the outcome of a header that cannot be sent."""
        action = self.action
        try:
            given = await resolve_headers(action, self.env, deadline=deadline)
        except HeaderValueError as err:
            if err.timed_out:
                message = f"{err} within {self.timeout:g}s"
                return _failed("DeadlineExceeded", message, status=RunStatus.TIMED_OUT)
            return _failed("InvalidHeader", str(err))
        self._secrets = self._secrets.with_values(header_secrets(action, given))
        return _merged(given, self.extra_headers)

    async def _sending(self, request: httpx.Request) -> None:
        self._sent = request

    def _answered(self, response: httpx.Response, body: bytearray) -> Outcome:
        """The outcome of a response that came whole: its status against `expectStatus`."""
        action, secrets = self.action, self._secrets
        summary = http_text.summary(response, action.url, secrets)
        text = _body_text(response, body, self.output_limit, secrets)
        if action.accepts(response.status_code):
            return Outcome(RunStatus.SUCCEEDED, response.status_code, None, summary, text)
        expected = f"expected {action.expect_status}"
        if httpclient.redirect_location(response) is not None:
            expected += "; a redirect is not followed"
        return Outcome(
            RunStatus.FAILED,
            response.status_code,
            "UnexpectedStatus",
            f"{summary} ({expected})",
            text,
        )

    def _incomplete(
        self, response: httpx.Response, body: bytearray, status: RunStatus, reason: str, what: str
    ) -> Outcome:
        """A response whose body did not all come: its status is kept, as every outcome that has
        one keeps it, and so is what came of the body."""
        action, secrets = self.action, self._secrets
        summary = http_text.summary(response, action.url, secrets)
        message = f"{action.method} {redact_request_url(action.url)}: {summary}"
        # A status the task accepts says the server took the request: a retry would send it
        # again, and do the slot's work twice. Not said of a run stopped (never retried).
        taken = action.accepts(response.status_code) and reason != self._stop_reason
        if taken:
            what += f"; not retried: the server took the request (HTTP {response.status_code})"
        return Outcome(
            status,
            response.status_code,
            reason,
            f"{message}; response body {what}",
            _body_text(response, body, self.output_limit, secrets),
            retryable=not taken,
        )


def _merged(task: list[tuple[str, str]], ours: Mapping[str, str]) -> list[tuple[str, str]]:
    """The task's headers and crontask's own, which replace any of the task's of the same name
    in any case: HTTP names are case-insensitive, and two ``X-Crontask-Run-Id`` would let a
    receiver pick the task's."""
    names = {name.lower() for name in ours}
    return [(k, v) for k, v in task if k.lower() not in names] + list(ours.items())


async def _read_head(response: httpx.Response, limit: int, into: bytearray) -> None:
    """The first ``limit`` bytes of the body into ``into`` as they come (what came is kept if
    time runs out); the rest is not downloaded. Without a ``Content-Length`` one byte more,
    which tells that the body goes on (a server that sends exactly ``limit`` and holds the
    connection then times the run out: with a length it is not waited for)."""
    limit += _content_length(response) is None
    async for chunk in response.aiter_raw():
        into += chunk[: limit - len(into)]
        if len(into) >= limit:
            break


def _body_text(response: httpx.Response, body: bytearray, limit: int, secrets: Secrets) -> str:
    """What is stored of ``body`` (read by ``_read_head``): its head, ``secrets`` hidden, marked
    as a command's output is when something was left out, by the limit or by the decoding (a
    byte kept as U+FFFD is three). How much the limit left out is known from
    ``Content-Length`` alone: the rest of the body was not read. An encoded body (gzip, as the
    task's ``Accept-Encoding`` asked or though crontask's asked for none) is not decoded: said,
    not kept as bytes that read as nothing."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if body and encoding not in ("", "identity"):
        shown = "".join(c if c.isprintable() else "?" for c in encoding[:40])
        asked = response.request.headers.get("accept-encoding", "").strip().lower()
        why = "crontask keeps none" if asked != "identity" else "though crontask asked for none"
        return f"[body not kept: sent encoded ({shown}), {why}]"
    text, cut = bounded_text(bytes(body[:limit]), limit, "head")
    text = secrets.hide(text)
    total = _content_length(response)
    if len(body) > limit or (total is not None and total > limit and len(body) == limit):
        dropped = None if total is None else total - (limit - cut)
    elif cut:
        dropped = cut
    else:
        return text
    return f"{text}\n{truncation_marker(dropped)}"


def _content_length(response: httpx.Response) -> int | None:
    """The body's length as the head says; None when it does not: no Content-Length, or one
    beside a Transfer-Encoding, which overrides it (RFC 9112 6.3), the body then framed by
    chunks whatever length it claims (a smaller one had the head of a longer body read as if
    it were all of it, without a truncation marker)."""
    if "transfer-encoding" in response.headers:
        return None
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _proxy_secrets() -> tuple[frozenset[str], frozenset[str]]:
    """What to hide of the credentials of the proxies a request may go through: those the
    client takes (``httpclient.proxy_routes``): every proxy the environment names, whatever
    the task's scheme."""
    anywhere, words = proxy_secrets(url for _, url in httpclient.proxy_routes().proxies)
    return frozenset(anywhere), frozenset(words)


class HttpRunner:
    """The ``http`` action: each attempt is one :class:`HttpRun` of ``spec.http``.

    ``environ`` is crontask's own environment, where header values named by ``valueFrom.env``
    are read (crontask makes the request; nothing is handed to a process). The run's identity
    travels as headers, so that a receiver can recognise a retry.
    """

    field = "http"

    def __init__(self, environ: Mapping[str, str], *, output_limit: int = 64 * 1024) -> None:
        self.environ = dict(environ)
        self.output_limit = output_limit
        http_trust.trust()  # at start-up (said then), not in the first burst of due tasks
        # A proxy setting that cannot be used is said at start-up; what a response may quote of
        # the proxies' credentials is worked out once, not at each attempt.
        self._proxies = _proxy_secrets()

    def attempt(self, definition: Definition, record: RunRecord) -> HttpRun:
        spec = definition.task.spec
        assert spec.http is not None  # the registry asks only tasks that set it
        return HttpRun(
            spec.http,
            env=self.environ,
            extra_headers={
                "X-Crontask-Run-Id": record.id,
                "X-Crontask-Attempt": str(record.attempt),
                "X-Crontask-Scheduled-Time": run_environment(record)["CRONTASK_SCHEDULED_TIME"],
            },
            timeout=spec.timeout_seconds,
            output_limit=self.output_limit,
            proxies=self._proxies,
        )
