"""Commands that talk to a running crontask over its REST API: ``tasks`` and ``trigger``.

``--server URL`` (default ``$CRONTASK_SERVER`` or ``http://127.0.0.1:8080``) names the
server; ``$CRONTASK_TOKEN``, when set, is sent as a bearer token. Output is a table, or the
API's JSON with ``--json``. An API error is printed as one line (from its problem+json body)
and the command exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from reconciler.cli.main_helpers import label, server_url, table, task_key

if TYPE_CHECKING:
    import httpx

DEFAULT_SERVER: Final = "http://127.0.0.1:8080"
SERVER_ENV: Final = "CRONTASK_SERVER"
TOKEN_ENV: Final = "CRONTASK_TOKEN"  # noqa: S105 - the name of a variable
TIMEOUT_SECONDS: Final = 10.0
PAGE_MAX: Final = 1000  # the largest page both lists serve
MAX_PAGES: Final = 10_000
_MAX_TOKEN: Final = 16 * 1024  # a JWT with many claims is a few KiB
_SENDABLE: Final = re.compile(r"[\x21-\x7e]+")


class RemoteError(Exception):
    """The API could not be reached or answered with an error; ``str()`` is one clear line."""


def default_server() -> str:
    """``$CRONTASK_SERVER`` (checked as ``--server`` is; a bad one is a usage error, exit 2)
    or the default."""
    server = os.environ.get(SERVER_ENV) or DEFAULT_SERVER
    try:
        return server_url(server)
    except argparse.ArgumentTypeError as err:
        print(f"crontask: ${SERVER_ENV}: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def default_token() -> str | None:
    """``$CRONTASK_TOKEN``, when it is one an HTTP header can carry (visible ASCII); else a
    one-line error, which never quotes the token."""
    token = os.environ.get(TOKEN_ENV) or None
    if token is not None and (len(token) > _MAX_TOKEN or not _SENDABLE.fullmatch(token)):
        print(
            f"crontask: ${TOKEN_ENV}: not a token crontask can send (at most {_MAX_TOKEN} "
            "visible ASCII characters, no spaces)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return token


def add_server_arg(parser: argparse.ArgumentParser) -> None:
    """``--server URL`` (for any command that talks to the API, e.g. ``crontask runs``)."""
    parser.add_argument(
        "--server",
        metavar="URL",
        type=server_url,
        default=None,
        help=f"the crontask API (default: ${SERVER_ENV} or {DEFAULT_SERVER}); "
        f"${TOKEN_ENV} is sent as a bearer token",
    )


def add_parsers(commands: Any) -> None:
    """Register ``tasks``, ``trigger`` and ``members`` on the ``crontask`` subcommand parser."""
    tasks = commands.add_parser(
        "tasks",
        help="list the tasks of a running crontask",
        description="List the tasks a running crontask schedules (over its API): state, "
        "source, next and last run.",
    )
    tasks.add_argument("--namespace", metavar="NS", type=label, help="only this namespace")
    tasks.add_argument("--json", action="store_true", help='print the API\'s {"items": [...]}')
    add_server_arg(tasks)
    tasks.set_defaults(handler=run_tasks)

    trigger = commands.add_parser(
        "trigger",
        help="start a run of a task now",
        description="Ask a running crontask to run NAMESPACE/NAME now (needs the operator "
        "role). The run may be skipped, e.g. while one is running and the task's "
        "concurrencyPolicy is Forbid; the reason is printed.",
    )
    trigger.add_argument("key", metavar="NAMESPACE/NAME", type=task_key)
    trigger.add_argument("--json", action="store_true", help="print the run record as JSON")
    add_server_arg(trigger)
    trigger.set_defaults(handler=run_trigger)

    members = commands.add_parser(
        "members",
        help="list the replicas of a running crontask (--ha)",
        description="List the replicas a running crontask (--ha) sees: each one's address, "
        "since when it is a member, its last renewal, the tasks it schedules and the digest of "
        "the definitions it read; and, when replicas read different definitions, on which tasks.",
    )
    members.add_argument("--json", action="store_true", help="print the API's answer")
    add_server_arg(members)
    members.set_defaults(handler=run_members)


def run_tasks(args: argparse.Namespace) -> int:
    server = args.server or default_server()
    params = {"namespace": args.namespace} if args.namespace else {}
    try:
        items = fetch_tasks(server, default_token(), params)
    except RemoteError as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps({"items": items}, indent=2))
        return 0
    if not items:
        print("no tasks" + (f" in namespace {args.namespace}" if args.namespace else ""))
        return 0
    rows = [
        [
            t["key"],
            t["state"],
            str(t.get("resource", {}).get("spec", {}).get("schedule", "")),
            _when((t.get("nextRuns") or [None])[0]),
            _last(t.get("lastRun")),
            f"{t['source']['kind']}:{t['source']['location']}",
        ]
        for t in items
    ]
    headers = ["TASK", "STATE", "SCHEDULE", "NEXT RUN", "LAST RUN", "SOURCE"]
    if any(t.get("owner") for t in items):  # replicas: who schedules each task
        headers.append("OWNER")
        for row, t in zip(rows, items, strict=True):
            row.append(t.get("owner") or "-")
    print(table(headers, rows))
    errors = [t for t in items if t.get("error")]
    for t in errors:
        print(f"{t['key']}: {t['error']}", file=sys.stderr)
    return 0


def run_members(args: argparse.Namespace) -> int:
    server = args.server or default_server()
    try:
        answer = request(server, default_token(), "GET", "/api/v1/members")
    except RemoteError as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    rows = [
        [
            m["id"] + (" (this one)" if m.get("me") else ""),
            m.get("address") or "-",
            _when(m.get("since")),
            _when(m.get("renewed")),
            str(m.get("ownedTasks", 0)),
            (m.get("digest") or "-") + (" draining" if m.get("draining") else ""),
        ]
        for m in answer.get("items", [])
    ]
    print(table(["MEMBER", "ADDRESS", "SINCE", "RENEWED", "TASKS", "DIGEST"], rows))
    if answer.get("disagreeingSince"):
        print(f"replicas read different definitions since {answer['disagreeingSince']}:")
        for task in answer.get("differingTasks", []):
            hashes = ", ".join(f"{m}={h or 'absent'}" for m, h in task["hashes"].items())
            print(f"  {task['task']}: {hashes}")
    return 0


def run_trigger(args: argparse.Namespace) -> int:
    namespace, _, name = args.key.partition("/")
    server = args.server or default_server()
    path = f"/api/v1/tasks/{quote(namespace, safe='')}/{quote(name, safe='')}/runs"
    try:
        run = request(server, default_token(), "POST", path)
    except RemoteError as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(run, indent=2))
    elif run.get("status") == "skipped":
        why = run.get("message") or run.get("reason") or "no reason given"
        print(f"{args.key}: run {run['id']} skipped ({run.get('reason')}): {why}")
    else:
        print(f"{args.key}: run {run['id']} {run.get('status')}")
    return 0


def fetch_tasks(
    server: str | None, token: str | None, params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every task ``GET /api/v1/tasks`` lists with ``params`` (namespace, source, state),
    following ``metadata.continue`` page after page. :class:`RemoteError` on any failure."""
    return list(_pages(server or default_server(), token, "/api/v1/tasks", params or {}, None))


def fetch_runs(
    server: str | None, token: str | None, params: Mapping[str, Any], limit: int
) -> list[dict[str, Any]]:
    """The newest ``limit`` runs ``GET /api/v1/runs`` lists with ``params`` (task, status,
    trigger, since, until - RFC 3339 -; ``None`` values are dropped), following pages.
    :class:`RemoteError` on any failure."""
    query = {k: _param(v) for k, v in params.items() if v is not None}
    return list(_pages(server or default_server(), token, "/api/v1/runs", query, limit))


def _pages(
    server: str, token: str | None, path: str, params: Mapping[str, str], limit: int | None
) -> Iterator[dict[str, Any]]:
    """The items of a list, page by page, until ``limit`` items or the last page. A token is
    followed at most :data:`MAX_PAGES` times, so a server that never ends a list cannot keep
    the client forever."""
    wanted = limit
    token_param: dict[str, str] = {}
    with connect() as client:
        for _ in range(MAX_PAGES):
            page_size = {} if wanted is None else {"limit": str(min(wanted, PAGE_MAX))}
            query = {**params, **page_size, **token_param}
            body = request(server, token, "GET", path, params=query, client=client)
            items = body.get("items")
            if not isinstance(items, list):
                raise RemoteError(f"{server} answered a list without items")
            yield from items[:wanted]
            if wanted is not None:
                wanted -= min(len(items), wanted)
            metadata = body.get("metadata")
            following = metadata.get("continue") if isinstance(metadata, dict) else None
            if not following or wanted == 0:
                return
            token_param = {"continue": str(following)}
    raise RemoteError(f"{server} answered more than {MAX_PAGES} pages")


def fetch_run(server: str | None, token: str | None, run_id: str) -> dict[str, Any]:
    """``GET /api/v1/runs/{id}``: ``{"id", "task", "attempts": [... with output]}``."""
    path = f"/api/v1/runs/{quote(run_id, safe='')}"
    return request(server or default_server(), token, "GET", path)


def request(
    server: str,
    token: str | None,
    method: str,
    path: str,
    *,
    params: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    client: httpx.Client | None = None,
) -> dict[str, Any]:
    """One API call (on ``client``'s connection when given); the decoded JSON body, or
    :class:`RemoteError` with one clear line."""
    import httpx  # here, not at the top: only the client commands pay for it

    if client is None:
        with connect(transport) as own:
            return request(server, token, method, path, params=params, client=own)
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    base = server.rstrip("/")
    try:
        response = client.request(method, base + path, params=params, headers=headers)
    except httpx.InvalidURL as exc:
        raise RemoteError(f"--server {server!r} is not a URL crontask can use: {exc}") from None
    except httpx.ConnectError:
        raise RemoteError(
            f"cannot reach crontask at {server} (is `crontask run` running?)"
        ) from None
    except httpx.TimeoutException:
        raise RemoteError(
            f"crontask at {server} did not answer within {TIMEOUT_SECONDS:g}s"
        ) from None
    except httpx.HTTPError as exc:
        raise RemoteError(f"request to {server} failed: {type(exc).__name__}") from None
    if response.status_code >= 400:
        raise RemoteError(_problem_line(response))
    if response.status_code == 204 or not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        raise RemoteError(f"{server} answered with something that is not JSON") from None
    if not isinstance(body, dict):
        raise RemoteError(f"{server} answered with unexpected JSON")
    return body


def connect(transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An HTTP client for :func:`request` (one connection for the pages of a list)."""
    import httpx

    return httpx.Client(timeout=TIMEOUT_SECONDS, transport=transport)


def _problem_line(response: httpx.Response) -> str:
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if isinstance(problem, dict) and ("title" in problem or "detail" in problem):
        line = f"{problem.get('status', response.status_code)} {problem.get('title', '')}".strip()
        if problem.get("detail"):
            line += f": {problem['detail']}"
        for error in problem.get("errors") or []:
            if isinstance(error, dict):
                where = ".".join(str(p) for p in error.get("location", []))
                line += f"; {where}: {error.get('message')}"
        return line
    return f"{response.status_code} {response.reason_phrase}"


def _fail(exc: RemoteError) -> int:
    print(f"crontask: {exc}", file=sys.stderr)
    return 1


def _param(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _when(value: str | None) -> str:
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S%z")
    except ValueError:
        return value


def _last(run: Mapping[str, Any] | None) -> str:
    if not run:
        return "-"
    status = str(run.get("status", ""))
    if run.get("reason"):
        status += f" ({run['reason']})"
    return f"{status} {_when(run.get('scheduledTime'))}"
