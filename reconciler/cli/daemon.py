"""The ``crontask run`` daemon: options from the command line, the HTTP server, the runtime.

Imported here are the light modules only. What the daemon serves with (the runtime, the
sources, the API's app, the page, uvicorn, the Kubernetes client, SQLAlchemy: 1-2 s) is
imported where it is used, after the options that need none of it are checked: a refused
option (a missing folder, a non-loopback ``--listen`` without auth) is said at once, not after
those imports; so is a state directory or a ``--db`` refused, opened by the light
``controller.state_open`` before the runtime is imported. The HTTP server itself is built in
``cli.api_server``, once the run store is open."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import resource
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit

from reconciler import logs, resolver
from reconciler.cli import state_place
from reconciler.cli.collector import start_up_collector
from reconciler.cli.given_paths import existing_paths
from reconciler.cli.main_helpers import UsageError
from reconciler.cli.serve import unmet_need
from reconciler.core.runs import runs_at_once
from reconciler.core.urls import redact_url
from reconciler.host import keep_private, raise_open_files
from reconciler.hostnames import ANY_NAME
from reconciler.membership.base import Timing
from reconciler.secretfile import read_secret_file

if TYPE_CHECKING:
    from reconciler.api.auth import AuthConfig
    from reconciler.api.authfile import AuthFile
    from reconciler.api.webhook_secret import WebhookSecret
    from reconciler.controller.options import HaOptions, Options
    from reconciler.controller.runtime import HttpServer
    from reconciler.sinks.notify_config import Notifications
    from reconciler.sources.git import GitOptions

log = logging.getLogger("crontask.api")
# The git source's start lines go where its syncs' lines go ("git revision applied", ...).
git_log = logging.getLogger("crontask.sources.git")
_FEW_OPEN_FILES = 4096  # warned of at start: 1 504 runs at once (core.runs.runs_at_once)


def run(args: argparse.Namespace) -> int:
    # Until serve() puts its own in place (graceful: runs are stopped and recorded): a stop
    # signal ends start-up at once. As PID 1 (a container) the kernel drops a signal that has
    # no handler, so a store that never answers kept SIGTERM waiting until the pod's kill.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_at_start)
    logs.configure(args.log_level, args.log_format)
    if not keep_private():
        log.debug("this process's /proc files stay readable to its user's processes")
    _open_files()
    _refuse_what_cannot_work(args)
    git = git_options(args)
    if git is not None:
        _check_git(git)
    _check_ha(args)
    if (inside := state_place.read_as_tasks(args.paths, args.state_dir)) is not None:
        usage_error(state_place.refusal(inside, args.state_dir))
    paths = existing_paths(args.paths)
    notified = notifications(args)
    page = page_url(args)
    listening = None if args.listen == "off" else http_server(args)
    # The state directory and the store first, with a light module: a refusal there is said
    # before the runtime's imports (the Kubernetes client's alone take half a second).
    from reconciler.cli import store_errors
    from reconciler.controller.state_open import open_state, uses_state_dir

    uses_dir = uses_state_dir(ha=bool(args.ha), git=git is not None)
    with store_errors.reported(args.db, args.state_dir):
        store = open_state(args.state_dir, args.db, uses_dir=uses_dir)
    # Every option that needs none of it is checked: the runtime's modules now (see the docstring).
    from reconciler.controller.runtime import log_starting, serve
    from reconciler.sources.kubernetes_options import KubernetesConfigError

    options = _options(args, git, paths, notified, page)
    http = None if listening is None else listening()  # the web stack's imports
    # Once the state directory and the store are open (a refusal there stays one line, as the
    # README promises), before what may take long: a first git clone, the CronTasks' list,
    # reading a large folder.
    log_starting(options)
    before = set(threading.enumerate())
    try:
        with start_up_collector() as started:
            code = resolver.run(serve(options, http=http, on_started=started, store=store))
    except KubernetesConfigError as err:
        raise SystemExit(f"crontask: {err}") from None
    return _end_without_stuck_threads(code, before)


def _check_git(git: GitOptions) -> None:
    """The git that ``--git`` needs, there (SystemExit) and with its helpers (warned of)."""
    from reconciler.sources.gitbounds import wrapper_problem
    from reconciler.sources.gitprocess import version_problem
    from reconciler.sources.gitrepo import git_env

    if (problem := version_problem(git_env(git.url))) is not None:
        raise SystemExit(f"crontask: --git: {problem}")
    if (missing := wrapper_problem(git_env(git.url))) is not None:
        git_log.warning(missing)  # git works without them, as it did before they were added


def _options(
    args: argparse.Namespace,
    git: GitOptions | None,
    paths: list[Path],
    notified: Notifications | None,
    page: str | None,
) -> Options:
    """The runtime's options, from ``args`` checked and what was made of them."""
    from reconciler.controller.job_options import JobOptions
    from reconciler.controller.options import Options
    from reconciler.sources.kubernetes_options import KubernetesOptions

    ha = ha_options(args)
    kubernetes = None
    if args.kubernetes:
        kubernetes = KubernetesOptions(
            namespace=args.namespace,
            all_namespaces=args.all_namespaces,
            kubeconfig=args.kubeconfig,
            context=args.context,
            resync_seconds=args.resync,
        )
    return Options(
        paths=paths,
        state_dir=args.state_dir,
        db_url=args.db,
        git=git,
        kubernetes=kubernetes,
        allow_empty=args.allow_empty,
        resync_seconds=args.resync,
        shutdown_grace=args.shutdown_grace,
        kill_grace=args.kill_grace,
        task_env=args.task_env,
        pass_env=tuple(args.pass_env),
        history_max_age=args.history_max_age or None,
        housekeeping_seconds=args.housekeeping_interval,
        ha=ha,
        lease_namespace=args.lease_namespace if ha is None else None,
        max_file_size=args.max_file_size,
        max_tasks=args.max_tasks,
        jobs=JobOptions(
            namespace=args.job_namespace,
            kubeconfig=None if args.kubernetes else args.kubeconfig,
            context=None if args.kubernetes else args.context,
        ),
        metrics_per_task_histograms=args.metrics_per_task_histograms,
        notifications=notified,
        page_url=page,
    )


def _end_without_stuck_threads(code: int, before: set[threading.Thread]) -> int:
    """``code``, once the threads ``serve`` started have ended (waited for ``THREADS_WAIT``
    seconds at most). Threads still alive then wait in a call with no bound of its own (a
    store that takes bytes and never answers): the process ends without them, as its stop
    was asked; said in one line naming them.

    Why ``os._exit``: Python joins every non-daemon thread at exit, and ``concurrent.futures``
    its workers too (an ``atexit`` hook); nothing can interrupt a thread blocked in a socket
    read, so a normal exit would wait for ever, and later signals would change nothing.
    Nothing is left to do by then but flush what was written (done here): the state
    directory is unlocked, the store closed, and the records' fate logged."""
    from reconciler.controller.runtime import THREADS_WAIT

    deadline = time.monotonic() + THREADS_WAIT
    stuck = []
    for thread in threading.enumerate():
        if thread in before or thread.daemon or thread is threading.current_thread():
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            stuck.append(thread.name)
    if not stuck:
        return code
    logging.getLogger("crontask").warning(
        "threads still waiting at exit (a call that never returns); ending without them",
        extra={"fields": {"threads": ",".join(sorted(stuck)), "exit_status": code}},
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a full disk or a closed pipe: nothing to add
            if stream is not None:
                stream.flush()
    os._exit(code)


def _refuse_what_cannot_work(args: argparse.Namespace) -> None:
    """A usage error (exit 2) for options that together cannot work, before anything runs."""
    if not args.paths and not args.git and not args.kubernetes:
        usage_error("nothing to read: give PATH..., --git URL and/or --kubernetes")
    if needed := unmet_need(args):
        usage_error(needed)
    if not args.kubernetes and (args.namespace or args.all_namespaces):
        usage_error("--namespace/--all-namespaces need --kubernetes")
    if args.job_namespace and not (args.kubernetes or args.kubeconfig):
        usage_error("--job-namespace needs --kubernetes or --kubeconfig")
    if args.context and not (args.kubernetes or args.kubeconfig):
        usage_error("--context needs --kubernetes or --kubeconfig")


def git_options(args: argparse.Namespace) -> GitOptions | None:
    """The git source's options, if there is one; a URL that holds credentials is warned of."""
    if not args.git:
        return None
    from reconciler.sources.git import GitOptions

    if (warning := _credentials_warning(args)) is not None:
        git_log.warning(warning, extra={"fields": {"url": redact_url(args.git)}})
    return GitOptions(
        url=args.git,
        ref=args.git_ref,
        path=args.git_path,
        interval=args.git_interval,
        timeout=args.git_timeout,
        memory_limit=args.git_memory_limit,
        ssh_key_file=args.git_ssh_key,
        known_hosts_file=args.git_known_hosts,
        token_file=args.git_token_file,
        token_env=args.git_token_env,
        guard_empty=not args.allow_empty,
    )


def _credentials_warning(args: argparse.Namespace) -> str | None:
    """What to say of the credentials a --git URL holds, which every local user can read in the
    process list: a password, whatever else is given (beside a token option it is not even
    sent: gitcredentials sends the token in its place); over http(s), a user name without a
    token option (a token is often passed as one). Not a user name beside a token option: the
    token is sent with it, as Bitbucket's app passwords need; nor ssh://git@host's."""
    parts = urlsplit(args.git)  # git_url has split it before
    with_token = args.git_token_file is not None or args.git_token_env is not None
    held = "the --git URL holds credentials, which every local user can read in the process list"
    if parts.password and with_token:
        return f"{held}: take its password out (over http(s), the token given is sent instead)"
    if parts.password or (
        parts.username and parts.scheme.lower() in ("http", "https") and not with_token
    ):
        return f"{held}: give the token with --git-token-file or --git-token-env"
    return None


def _stop_at_start(signum: int, _frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # as the shell says a process a signal ended: SIGTERM 143


def notifications(args: argparse.Namespace) -> Notifications | None:
    if args.notifications is None:
        return None
    from reconciler.sinks import notify_config

    try:
        return notify_config.load(args.notifications)
    except notify_config.NotificationConfigError as err:
        raise SystemExit(f"crontask: --notifications:\n{err}") from None


def page_url(args: argparse.Namespace) -> str | None:
    """--external-url, else the address the page is served on."""
    if args.external_url:
        from reconciler.sinks import notify_config

        try:
            notify_config.check_url(args.external_url)
        except ValueError as err:
            usage_error(f"--external-url: {err}")
        return str(args.external_url).rstrip("/")
    if args.listen == "off":
        return None
    host, _, port = str(args.listen).rpartition(":")
    if host in ("0.0.0.0", "[::]", "::", ""):  # noqa: S104 - a comparison, not a bind
        host = socket.gethostname()
    return f"http://{host}:{port}"


def _open_files() -> None:
    """Room for many runs at once (see ``host.OPEN_FILES``), and a word at start if the host
    allows little: past it a slot is skipped (``TooManyRuns``, with the bound's value)."""
    before, after = raise_open_files()
    fields = {"before": before, "limit": after}
    if after != resource.RLIM_INFINITY and after < _FEW_OPEN_FILES:
        log.warning(
            f"the host allows {after} open files (ulimit -n, LimitNOFILE): {runs_at_once(after)} "
            "runs can be in progress at once",
            extra={"fields": fields},
        )
    elif after != before:
        log.info("open files limit raised", extra={"fields": fields})


def usage_error(message: str) -> NoReturn:
    raise UsageError(message)  # the usage line, this, exit status 2 (cli.main)


def _check_ha(args: argparse.Namespace) -> None:
    """The usage errors of ``--ha`` and the options it takes (:func:`ha_options`)."""
    if not args.ha:
        # Without --ha, on Kubernetes: where the Lease crontask-single lives (Options).
        if args.lease_namespace and not args.kubernetes:
            usage_error("--lease-namespace needs --ha or --kubernetes")
        return
    if not args.db or not args.db.startswith(("postgresql://", "postgresql+psycopg://")):
        usage_error(
            "--ha needs a run store every replica shares: give --db (or CRONTASK_DB) "
            "postgresql+psycopg://USER@HOST/DB (SQLite is a file on one machine, so "
            "replicas could not see each other's claims on a slot)"
        )
    if not args.renew_interval < args.renew_deadline < args.lease_duration:
        usage_error(
            "--renew-interval < --renew-deadline < --lease-duration is required, so that a "
            "replica stops starting runs before the others can take its tasks "
            f"(got {args.renew_interval:g}s, {args.renew_deadline:g}s, {args.lease_duration:g}s)"
        )
    if args.lease_namespace and not args.kubernetes:
        usage_error(
            "--lease-namespace needs --kubernetes (without it, membership is in the database)"
        )


def ha_options(args: argparse.Namespace) -> HaOptions | None:
    """``--ha``'s options, once :func:`_check_ha` has passed them."""
    if not args.ha:
        return None
    from reconciler.controller.options import HaOptions

    host, _, port = str(args.listen).rpartition(":")
    if host in ("0.0.0.0", "[::]", "::", ""):  # noqa: S104 - a comparison, not a bind
        host = socket.gethostname()
    return HaOptions(
        timing=Timing(args.renew_interval, args.renew_deadline, args.lease_duration),
        lease_namespace=args.lease_namespace,
        address=None if args.listen == "off" else f"{host}:{port}",
    )


def http_server(args: argparse.Namespace) -> Callable[[], HttpServer]:
    """Check the address and the auth settings now, before anything starts, and bind the
    address; what is returned makes the server (``cli.api_server``, which loads the web
    stack), to be called once the run store is open."""
    host, sep, port_text = str(args.listen).rpartition(":")
    if not sep or not port_text.isdigit():
        raise SystemExit(f"crontask: --listen {args.listen!r} is not HOST:PORT")
    host = host.strip("[]")
    auth_file, auth = _auth_of(args, host)
    webhook_secret = _webhook_secret(args.git_webhook_secret_file)
    # Bind now: a busy port is a start-up error, said before anything runs.
    try:
        sock = listening_socket(host, int(port_text))
    except OSError as err:
        busy = err.errno == errno.EADDRINUSE
        hint = " (give another --listen HOST:PORT, or --listen off)" if busy else ""
        message = f"crontask: cannot listen on {args.listen}: {err.strerror}{hint}"
        raise SystemExit(message) from None

    def server() -> HttpServer:
        from reconciler.cli import api_server

        return api_server.http_server(
            args, host, int(port_text), sock, auth_file, auth, webhook_secret
        )

    return server


def _auth_of(args: argparse.Namespace, host: str) -> tuple[AuthFile | None, AuthConfig | None]:
    """The auth file of ``--auth-config`` and what it says, checked against ``--listen``'s
    ``host`` and ``--allow-host`` now, before anything starts."""
    from reconciler.api.auth import AuthConfigError, check_listen
    from reconciler.api.authfile import AuthFile

    try:
        auth_file = AuthFile.open(Path(args.auth_config)) if args.auth_config else None
        auth = auth_file.config if auth_file is not None else None
    except (AuthConfigError, ValueError, OSError) as err:
        raise SystemExit(f"crontask: {err}") from None
    try:
        check_listen(host, auth, args.insecure_no_auth)
    except ValueError as err:
        usage_error(str(err))  # an option without the one it needs (README: exit status 2)
    if ANY_NAME in args.allow_host and auth is None:
        usage_error(  # an option without the one it needs, as check_listen's
            "--allow-host '*' needs --auth-config: without it every caller is the admin, and "
            "any web page that makes its own name resolve to this machine could act as one "
            "(name the hosts with --allow-host NAME instead)"
        )
    if auth is not None and not auth.sessions_shared:
        # Common and harmless on one process (tokens only), so info; replicas behind one address
        # sign each other's people out, so a warning with --ha.
        log.log(
            logging.WARNING if args.ha else logging.INFO,
            "the auth file names no secret (no sessionSecretFile, no HMAC jwt.secretFile): status "
            "page sessions last as long as this process and hold on this replica only; give "
            "sessionSecretFile to keep them across restarts and replicas",
            extra={"fields": {"auth_config": str(args.auth_config)}},
        )
    return auth_file, auth


def _webhook_secret(secret_file: Path | None) -> WebhookSecret | None:
    """The secret of ``--git-webhook-secret-file``, trimmed, read again at each signed request
    (``api.webhook_secret``); SystemExit for one that cannot be read or is empty at start (an
    HMAC with an empty key is one anyone can compute)."""
    if not secret_file:
        return None
    try:
        secret = read_secret_file(secret_file).strip()
    except ValueError as err:
        raise SystemExit(f"crontask: --git-webhook-secret-file {secret_file}: {err}") from None
    if not secret:
        raise SystemExit(
            f"crontask: --git-webhook-secret-file {secret_file}: empty (after trimming "
            "whitespace): anyone could sign a webhook with an empty secret"
        )
    from reconciler.api.webhook_secret import WebhookSecret

    return WebhookSecret(secret, secret_file)


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket whose connections send small writes at once.

    asyncio sets TCP_NODELAY only on sockets whose ``proto`` says TCP, which
    ``socket.create_server``'s do not; without it a keep-alive client (Prometheus, the CLI)
    waits ~40 ms for a delayed ACK on every small response. Accepted connections inherit the
    option from the listening socket.
    """
    # create_server binds IPv4 unless told otherwise: an IPv6 literal (``--listen [::1]:8080``;
    # a pod with IPv6 only) needs its own family. ``::`` is every address, as ``0.0.0.0`` is,
    # so it takes IPv4 clients too where the host can (uvicorn's own bind does the same).
    sock = socket.create_server(
        (host, port),
        family=socket.AF_INET6 if ":" in host else socket.AF_INET,
        reuse_port=False,
        dualstack_ipv6=host == "::" and socket.has_dualstack_ipv6(),
    )
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
