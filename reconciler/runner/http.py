"""The HTTP action: one request per attempt (httpx; the one module that imports it here).

Outcome rules: a response whose status is in ``expectStatus`` succeeds, any other status
fails (reason ``UnexpectedStatus``); a connection error, a TLS error or a request timeout
fails with a message that says which (reason ``RequestFailed``). The response status is
recorded as the run's exit code and the first ``output_limit`` bytes of the body as its output.
Header values from ``valueFrom`` are read at each attempt (a rotated secret is picked up) and
never appear in messages or logs. ``timeout`` bounds the whole attempt, the body included: a
server sending a byte now and then cannot hold it for longer.

Each attempt has its own client, so nothing (a connection, a cookie) carries over from one run to
the next; they share one TLS context, built once: loading the CA bundle takes ~45 ms on the event
loop and ~1 MiB, too much per run when many tasks are due together.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
from collections.abc import Mapping
from pathlib import Path

import httpx

from reconciler.core.desired import Definition
from reconciler.core.model import HEADER_VALUE, HttpAction
from reconciler.core.runs import RunRecord, RunStatus
from reconciler.core.urls import redact_url
from reconciler.runner.base import Outcome, run_environment
from reconciler.runner.base import failed as _failed

# A server chooses its reason phrase and what a protocol error quotes (up to h11's 16 KiB):
# messages keep this much of it.
_SERVER_TEXT = 200


@functools.cache
def _verifying_context() -> ssl.SSLContext:
    """The TLS context of every attempt: what httpx's default ``verify=True`` builds (certifi's
    bundle, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), verification and hostname check on.

    Built once per process (tasks have no TLS settings of their own), then only read:
    an ``SSLContext`` is safe to share between connections.
    """
    return httpx.create_ssl_context()


class HeaderValueError(Exception):
    """A header value could not be read or is not a valid one; the message names the header,
    never its value."""


def resolve_headers(action: HttpAction, environ: Mapping[str, str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for header in action.headers:
        if header.value is not None:
            headers[header.name] = header.value
            continue
        source = header.value_from
        assert source is not None  # the model guarantees exactly one of value, valueFrom
        if source.env is not None:
            if source.env not in environ:
                raise HeaderValueError(
                    f"header {header.name!r}: environment variable {source.env} is not set"
                )
            headers[header.name] = environ[source.env]
        else:
            assert source.file is not None
            try:
                headers[header.name] = Path(source.file).read_text().strip()
            except OSError as err:
                raise HeaderValueError(
                    f"header {header.name!r}: cannot read {source.file}: {err.strerror}"
                ) from None
    for name, value in headers.items():
        # httpx would refuse it with an error that quotes the value (a newline) or raise
        # UnicodeEncodeError, whose repr holds the value (non-ASCII): check first, say nothing.
        if not HEADER_VALUE.fullmatch(value):
            raise HeaderValueError(
                f"header {name!r}: the value is not a valid header value "
                "(printable ASCII, spaces and tabs only)"
            )
    return headers


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
    ) -> None:
        self.action = action
        self.env = dict(env if env is not None else os.environ)
        self.extra_headers = dict(extra_headers or {})
        # The run's timeoutSeconds bounds the whole attempt; the action's own bounds the request.
        self.timeout = min(t for t in (timeout, action.timeout_seconds) if t is not None)
        self.output_limit = output_limit
        self._task: asyncio.Task[Outcome] | None = None
        self._stop_reason: str | None = None

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
            if self._stop_reason is None:
                raise  # cancelled from outside: propagate
            return _failed(self._stop_reason, f"stopped: {self._stop_reason}")

    async def _request(self) -> Outcome:
        action = self.action
        try:
            headers = {**resolve_headers(action, self.env), **self.extra_headers}
        except HeaderValueError as err:
            return _failed("InvalidHeader", str(err))
        try:
            # httpx's timeout is per read: asyncio's is for the whole request and its body.
            async with (
                asyncio.timeout(self.timeout),
                httpx.AsyncClient(
                    verify=_verifying_context(),
                    timeout=self.timeout,
                    follow_redirects=False,
                    # The body is kept as sent, so ask for it uncompressed (a task's own
                    # Accept-Encoding header wins).
                    headers={"Accept-Encoding": "identity"},
                ) as client,
                client.stream(
                    str(action.method),
                    action.url,
                    headers=headers,
                    content=action.body.encode() if action.body is not None else None,
                ) as response,
            ):
                body = await _read_head(response, self.output_limit)
        except (httpx.TimeoutException, TimeoutError):
            # The message is stored and shown (`crontask runs --id`, the API): no credentials.
            return _failed(
                "DeadlineExceeded",
                f"{action.method} {redact_url(action.url)}: no response within {self.timeout:g}s",
                status=RunStatus.TIMED_OUT,
            )
        except httpx.HTTPError as err:
            shown = redact_url(action.url)
            return _failed("RequestFailed", f"{action.method} {shown}: {_describe(err)}")
        text = body.decode("utf-8", errors="replace")
        reason = _clip(response.reason_phrase)
        summary = f"HTTP {response.status_code} {reason}".rstrip()
        if action.accepts(response.status_code):
            return Outcome(RunStatus.SUCCEEDED, response.status_code, None, summary, text)
        return Outcome(
            RunStatus.FAILED,
            response.status_code,
            "UnexpectedStatus",
            f"{summary} (expected {action.expect_status})",
            text,
        )


async def _read_head(response: httpx.Response, limit: int) -> bytes:
    """The first ``limit`` bytes of the body; the rest is not downloaded."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk[: limit - size])
        size += len(chunks[-1])
        if size >= limit:
            break
    return b"".join(chunks)


def _describe(err: httpx.HTTPError) -> str:
    cause = err.__cause__ or err.__context__
    text = _clip(str(err) or type(err).__name__)
    if isinstance(err, httpx.ConnectError):
        return f"cannot connect ({text})"
    return f"{type(err).__name__}: {text}" if cause is None else f"{text} ({_clip(str(cause))})"


def _clip(text: str) -> str:
    return text if len(text) <= _SERVER_TEXT else f"{text[:_SERVER_TEXT]}..."


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
        _verifying_context()  # at start-up, not in the first burst of due tasks

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
        )
