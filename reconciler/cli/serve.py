"""``crontask run``: the reconciler, with its HTTP interface."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from reconciler import logs
from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig, AuthConfigError, check_listen, is_loopback
from reconciler.cli.durations import duration_arg
from reconciler.cli.main_helpers import existing_paths
from reconciler.controller.runtime import HttpServer, Options, serve
from reconciler.controller.view import RuntimeView
from reconciler.sinks.metrics import Metrics
from reconciler.sources.git import GitOptions
from reconciler.sources.kubernetes import KubernetesOptions

log = logging.getLogger("crontask.api")

HELP = """\
Read CronTask definitions from PATH... (YAML files, or folders searched recursively for
*.yaml/*.yml), a git repository (--git) and/or CronTask custom resources of a Kubernetes
cluster (--kubernetes: watched, with status and Events written back), schedule them, run them,
and record every run.
Files are watched: an edit takes effect within a second; a file that breaks keeps its tasks
on their last good definition and the error is logged with file:line:col. The REST API,
/healthz, /readyz and /metrics are served on --listen (127.0.0.1:8080). Stop with Ctrl-C or
SIGTERM: running tasks get --shutdown-grace to finish.
"""


def add_state_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".crontask"),
        help="where the run history and API-created tasks live (default: ./.crontask)",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="run store URL instead of the state dir's SQLite file, "
        "e.g. sqlite:////var/lib/crontask/runs.db or postgresql+psycopg://user@host/db",
    )


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "run",
        help="run the reconciler",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="YAML files or folders")
    add_state_args(parser)
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="the API, health and metrics address (default: 127.0.0.1:8080); 'off' serves none. "
        "A non-loopback address needs --auth-config (or --insecure-no-auth)",
    )
    parser.add_argument(
        "--auth-config",
        type=Path,
        default=os.environ.get("CRONTASK_AUTH_CONFIG"),
        metavar="FILE",
        help="tokens and JWT settings for the API (env: CRONTASK_AUTH_CONFIG); see README",
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve the API on a non-loopback address without authentication (not recommended)",
    )
    git = parser.add_argument_group("git source")
    git.add_argument("--git", metavar="URL", help="read CronTasks from this repository")
    git.add_argument("--git-ref", default="HEAD", metavar="REF", help="branch, tag or SHA")
    git.add_argument("--git-path", default="", metavar="DIR", help="folder inside the repo")
    git.add_argument(
        "--git-interval", type=duration_arg, default=30.0, metavar="DURATION", help="(30s)"
    )
    git.add_argument("--git-ssh-key", type=Path, metavar="FILE", help="SSH private key")
    git.add_argument("--git-known-hosts", type=Path, metavar="FILE", help="SSH known_hosts")
    git.add_argument("--git-token-file", type=Path, metavar="FILE", help="HTTPS token file")
    git.add_argument("--git-token-env", metavar="NAME", help="HTTPS token environment variable")
    git.add_argument(
        "--git-webhook-secret-file",
        type=Path,
        metavar="FILE",
        help="shared secret for POST /api/v1/hooks/git (X-Hub-Signature-256, as GitHub/Gitea send)",
    )
    kube = parser.add_argument_group("kubernetes source")
    kube.add_argument(
        "--kubernetes",
        action="store_true",
        help="read CronTask custom resources (list + watch) and write their status and Events; "
        "uses --kubeconfig, $KUBECONFIG, ~/.kube/config, or the in-cluster service account",
    )
    scope = kube.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        metavar="NS",
        help="the namespace to watch (default: the kubeconfig context's, or the pod's own)",
    )
    scope.add_argument(
        "--all-namespaces", action="store_true", help="watch CronTasks in every namespace"
    )
    kube.add_argument("--kubeconfig", type=Path, metavar="FILE", help="kubeconfig file")
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="let every source yielding no task remove all running tasks (default: keep them, "
        "since an empty result is usually a wrong path or a failed checkout)",
    )
    parser.add_argument(
        "--resync",
        type=duration_arg,
        default=300.0,
        metavar="DURATION",
        help="full re-read of every source, healing missed events (default: 5m)",
    )
    parser.add_argument(
        "--shutdown-grace",
        type=duration_arg,
        default=30.0,
        metavar="DURATION",
        help="on SIGTERM, how long running tasks may finish before they are stopped (30s)",
    )
    parser.add_argument(
        "--kill-grace",
        type=duration_arg,
        default=10.0,
        metavar="DURATION",
        help="after TERM at a timeout, how long before KILL (default: 10s)",
    )
    parser.add_argument(
        "--history-max-age",
        type=duration_arg,
        default=30 * 86400.0,
        metavar="DURATION",
        help="delete run records older than this (default: 30d); per-task limits "
        "(successfulRunsHistoryLimit, failedRunsHistoryLimit) apply too; 0 keeps them forever",
    )
    parser.add_argument(
        "--housekeeping-interval",
        type=duration_arg,
        default=600.0,
        metavar="DURATION",
        help="how often history retention is enforced (default: 10m)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.add_argument("--log-format", default="logfmt", choices=["logfmt", "json"])
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    logs.configure(args.log_level, args.log_format)
    if not args.paths and not args.git and not args.kubernetes:
        raise SystemExit("crontask: nothing to read: give PATH..., --git URL and/or --kubernetes")
    if not args.kubernetes and (args.namespace or args.all_namespaces or args.kubeconfig):
        raise SystemExit("crontask: --namespace/--all-namespaces/--kubeconfig need --kubernetes")
    kubernetes = None
    if args.kubernetes:
        kubernetes = KubernetesOptions(
            namespace=args.namespace,
            all_namespaces=args.all_namespaces,
            kubeconfig=args.kubeconfig,
            resync_seconds=args.resync,
        )
    git = None
    if args.git:
        git = GitOptions(
            url=args.git,
            ref=args.git_ref,
            path=args.git_path,
            interval=args.git_interval,
            ssh_key_file=args.git_ssh_key,
            known_hosts_file=args.git_known_hosts,
            token_file=args.git_token_file,
            token_env=args.git_token_env,
        )
    options = Options(
        paths=existing_paths(args.paths),
        state_dir=args.state_dir,
        db_url=args.db,
        git=git,
        kubernetes=kubernetes,
        allow_empty=args.allow_empty,
        resync_seconds=args.resync,
        shutdown_grace=args.shutdown_grace,
        kill_grace=args.kill_grace,
        history_max_age=args.history_max_age or None,
        housekeeping_seconds=args.housekeeping_interval,
    )
    http = None if args.listen == "off" else http_server(args)
    return asyncio.run(serve(options, http=http))


def http_server(args: argparse.Namespace) -> HttpServer:
    """Check the address and the auth settings now, before anything starts."""
    host, sep, port_text = str(args.listen).rpartition(":")
    if not sep or not port_text.isdigit():
        raise SystemExit(f"crontask: --listen {args.listen!r} is not HOST:PORT")
    host = host.strip("[]")
    try:
        auth = AuthConfig.load(args.auth_config) if args.auth_config else None
        check_listen(host, auth, args.insecure_no_auth)
        secret_file = args.git_webhook_secret_file
        webhook_secret = secret_file.read_bytes().strip() if secret_file else None
    except (AuthConfigError, ValueError, OSError) as err:
        raise SystemExit(f"crontask: {err}") from None
    # Bind now: a busy port is a start-up error, said before anything runs.
    try:
        sock = socket.create_server((host, int(port_text)), reuse_port=False)
    except OSError as err:
        raise SystemExit(f"crontask: cannot listen on {args.listen}: {err.strerror}") from None

    async def serve_http(runtime: RuntimeView, metrics: Metrics, stop: asyncio.Event) -> None:
        app = create_app(runtime, auth=auth, metrics=metrics, webhook_secret=webhook_secret)
        config = uvicorn.Config(
            app,
            host=host,
            port=int(port_text),
            lifespan="off",
            access_log=False,  # the API logs one structured line per request itself
            log_config=None,
        )
        server = _Server(config)
        serving = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        log.info("api listening", extra={"fields": {"address": args.listen, "auth": bool(auth)}})
        if auth is None and not is_loopback(host):
            log.warning(
                "the API is served without authentication (--insecure-no-auth): anyone who "
                "can reach it can create, delete and run tasks",
                extra={"fields": {"address": args.listen}},
            )
        await stop.wait()
        server.should_exit = True
        await serving

    return serve_http


class _Server(uvicorn.Server):
    """crontask owns SIGTERM/SIGINT (graceful shutdown of runs); uvicorn stops with it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
