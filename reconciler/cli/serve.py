"""``crontask run``: its arguments. The daemon itself lives in ``daemon`` and is imported only
when it runs, so that every other command starts without loading the web and Kubernetes
stacks."""

from __future__ import annotations

import argparse
import os
from typing import Any

from reconciler.cli.durations import INTERVAL, duration_arg
from reconciler.cli.main_helpers import (
    add_source_bounds_args,
    add_state_args,
    external_url,
    git_path,
    git_ref,
    git_url,
    label,
    listen_address,
    parse_size,
    path_arg,
)
from reconciler.hostnames import allowed_host
from reconciler.runner.environment import valid_name
from reconciler.sources.gitbounds import DEFAULT_MEMORY_LIMIT
from reconciler.sources.limits import format_size

HELP = """\
Read CronTask definitions from PATH... (YAML files, or folders searched recursively for
*.yaml/*.yml), a git repository (--git) and/or CronTask custom resources of a Kubernetes
cluster (--kubernetes: watched, with status and Events written back), schedule them, run them,
and record every run.
Files are watched: an edit takes effect within a second; a file that breaks keeps its tasks
on their last good definition and the error is logged with file:line:col. The REST API,
/healthz, /readyz and /metrics are served on --listen (127.0.0.1:8080). Stop with Ctrl-C,
SIGTERM or SIGHUP: running tasks get --shutdown-grace to finish.
"""


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
        "--allow-empty",
        action="store_true",
        help="let every source yielding no task remove all running tasks (default: keep them, "
        "since an empty result is usually a wrong path or a failed checkout)",
    )
    parser.add_argument(
        "--resync",
        type=INTERVAL,
        default=300.0,
        metavar="DURATION",
        help="full re-read of every source, healing missed events (default: 5m)",
    )
    add_source_bounds_args(parser)
    for add_group in (_api, _git, _kubernetes, _replicas, _runs, _history, _observability):
        add_group(parser)
    parser.set_defaults(handler=run)


# Options that mean something only beside another: what each needs, and its options' dests.
_NEEDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "git": (
        "--git",
        (
            "git_ref",
            "git_path",
            "git_interval",
            "git_timeout",
            "git_memory_limit",
            "git_ssh_key",
            "git_known_hosts",
            "git_token_file",
            "git_token_env",
            "git_webhook_secret_file",
        ),
    ),
    "ha": ("--ha", ("renew_interval", "renew_deadline", "lease_duration")),
}


def unmet_need(args: argparse.Namespace) -> str | None:
    """The first option given (set to other than its default) without the option it needs, as
    a usage error's words; None if there is none. A git or replica option without ``--git`` or
    ``--ha`` was taken and ignored."""
    defaults = argparse.ArgumentParser()
    _git(defaults)
    _replicas(defaults)
    default = vars(defaults.parse_args([]))
    for needed, (flag, dests) in _NEEDS.items():
        if getattr(args, needed):
            continue
        for dest in dests:
            if getattr(args, dest) != default[dest]:
                return f"--{dest.replace('_', '-')} needs {flag}"
    return None


def _api(parser: argparse.ArgumentParser) -> None:
    """The API, the status page and what reaches people from them."""
    group = parser.add_argument_group("API, status page and notifications")
    group.add_argument(
        "--listen",
        type=listen_address,
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="the API, health and metrics address (default: 127.0.0.1:8080); 'off' serves none. "
        "A non-loopback address needs --auth-config (or --insecure-no-auth)",
    )
    group.add_argument(
        "--auth-config",
        type=path_arg,
        # Empty, as unset, is no file: Path("") would be the current directory.
        default=os.environ.get("CRONTASK_AUTH_CONFIG") or None,
        metavar="FILE",
        help="tokens and JWT settings for the API (env: CRONTASK_AUTH_CONFIG); see README",
    )
    group.add_argument(
        "--allow-host",
        type=_allowed_host,
        action="append",
        default=[],
        metavar="NAME",
        help="on a loopback --listen, or on any without --auth-config, also answer requests "
        "addressed to NAME (a name crontask is called by, or the Host a proxy forwards, such "
        "as a sidecar's pod address or Service name); repeat for more; '*' answers any name "
        "and needs --auth-config. Other names are answered 421 (DNS rebinding)",
    )
    group.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve the API on a non-loopback address without authentication (not "
        "recommended); only IP addresses, localhost, --external-url's host and --allow-host "
        "names are answered",
    )
    group.add_argument(
        "--notifications",
        type=path_arg,
        metavar="FILE",
        help="receivers and routes for failure notifications (generic, generic-hmac, slack "
        "webhooks); see README, Notifications",
    )
    group.add_argument(
        "--external-url",
        metavar="URL",
        type=external_url,
        help="the status page's URL as people reach it, for links in notifications "
        "(default: http://HOST:PORT of --listen)",
    )


def _git(parser: argparse.ArgumentParser) -> None:
    """The git source."""
    group = parser.add_argument_group("git source")
    group.add_argument(
        "--git", type=git_url, metavar="URL", help="read CronTasks from this repository"
    )
    group.add_argument(
        "--git-ref", type=git_ref, default="HEAD", metavar="REF", help="branch, tag or SHA"
    )
    group.add_argument(
        "--git-path", type=git_path, default="", metavar="DIR", help="folder inside the repo"
    )
    group.add_argument(
        "--git-interval", type=INTERVAL, default=30.0, metavar="DURATION", help="(30s)"
    )
    group.add_argument(
        "--git-timeout",
        type=INTERVAL,
        default=120.0,
        metavar="DURATION",
        help="longest a git call may take; a remote that hangs is given up then (120s)",
    )
    group.add_argument(
        "--git-memory-limit",
        type=_git_memory_limit,
        default=DEFAULT_MEMORY_LIMIT,
        metavar="SIZE",
        help="the most memory (address space) git and each of its helpers may take: a fetch or "
        "collection that needs more fails, saying so (default: 1GiB; e.g. 512MiB, 4GiB)",
    )
    group.add_argument("--git-ssh-key", type=path_arg, metavar="FILE", help="SSH private key")
    group.add_argument("--git-known-hosts", type=path_arg, metavar="FILE", help="SSH known_hosts")
    group.add_argument("--git-token-file", type=path_arg, metavar="FILE", help="HTTPS token file")
    group.add_argument("--git-token-env", metavar="NAME", help="HTTPS token environment variable")
    group.add_argument(
        "--git-webhook-secret-file",
        type=path_arg,
        metavar="FILE",
        help="shared secret for POST /api/v1/hooks/git (X-Hub-Signature-256, as GitHub/Gitea send)",
    )


def _kubernetes(parser: argparse.ArgumentParser) -> None:
    """CronTask resources, and the cluster that job tasks run on."""
    group = parser.add_argument_group("kubernetes source")
    group.add_argument(
        "--kubernetes",
        action="store_true",
        help="read CronTask custom resources (list + watch) and write their status and Events; "
        "uses --kubeconfig, $KUBECONFIG, ~/.kube/config, or the in-cluster service account",
    )
    scope = group.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        metavar="NS",
        type=namespace_flag,
        help="the namespace to watch (default: the kubeconfig context's, or the pod's own)",
    )
    scope.add_argument(
        "--all-namespaces", action="store_true", help="watch CronTasks in every namespace"
    )
    group.add_argument(
        "--kubeconfig",
        type=path_arg,
        metavar="FILE",
        help="kubeconfig file; without --kubernetes, the connection for job tasks' Jobs only",
    )
    group.add_argument(
        "--context",
        metavar="NAME",
        help="the kubeconfig context to use (default: its current-context, as kubectl's)",
    )
    group.add_argument(
        "--job-namespace",
        metavar="NS",
        type=namespace_flag,
        help="where the Jobs of job tasks from folders, git or the API go when their spec.job "
        "names no namespace (default: the pod's namespace, else the kubeconfig context's)",
    )


def _replicas(parser: argparse.ArgumentParser) -> None:
    """Several instances sharing one run store (``--ha``)."""
    group = parser.add_argument_group("replicas")
    group.add_argument(
        "--ha",
        action="store_true",
        help="join the replicas that share this run store (--db postgresql+psycopg://...): each "
        "task is scheduled by one live replica, a lost replica's tasks move to the others; "
        "membership is a Lease per replica with --kubernetes, else a row in the database",
    )
    group.add_argument(
        "--lease-namespace",
        metavar="NS",
        type=namespace_flag,
        help="where the replicas' Leases live (--ha; default: the pod's namespace, else the "
        "kubeconfig context's); without --ha, with --kubernetes, where the Lease crontask-single "
        "that tells of a second crontask running the same CronTasks lives (default: the "
        "namespace watched; with --all-namespaces, the pod's)",
    )
    group.add_argument(
        "--renew-interval",
        type=INTERVAL,
        default=2.0,
        metavar="DURATION",
        help="how often membership is renewed (default: 2s)",
    )
    group.add_argument(
        "--renew-deadline",
        type=INTERVAL,
        default=10.0,
        metavar="DURATION",
        help="a replica that could not renew for this long stops starting runs (default: 10s)",
    )
    group.add_argument(
        "--lease-duration",
        type=INTERVAL,
        default=15.0,
        metavar="DURATION",
        help="a replica not renewed for this long is gone; its tasks move (default: 15s)",
    )


def _runs(parser: argparse.ArgumentParser) -> None:
    """How runs are stopped and what their commands inherit."""
    group = parser.add_argument_group("runs")
    group.add_argument(
        "--shutdown-grace",
        type=duration_arg,
        default=30.0,
        metavar="DURATION",
        help="on SIGTERM, how long running tasks may finish before they are stopped (30s)",
    )
    group.add_argument(
        "--kill-grace",
        type=duration_arg,
        default=10.0,
        metavar="DURATION",
        help="after TERM at a timeout, how long before KILL (default: 10s)",
    )
    group.add_argument(
        "--task-env",
        choices=["minimal", "inherit"],
        default="minimal",
        help="what a command's environment starts from, before its own env and CRONTASK_*: "
        "'minimal' (default) keeps only PATH, HOME, USER, LOGNAME, SHELL, LANG, LC_ALL, "
        "LC_CTYPE, TZ, TMPDIR, KUBERNETES_SERVICE_HOST/_PORT of crontask's, plus --pass-env; "
        "'inherit' passes all of it, credentials included",
    )
    group.add_argument(
        "--pass-env",
        action="append",
        type=env_name,
        default=[],
        metavar="NAME",
        help="also give every command this variable of crontask's environment (repeatable)",
    )


def _history(parser: argparse.ArgumentParser) -> None:
    """How long run records are kept."""
    group = parser.add_argument_group("run history")
    group.add_argument(
        "--history-max-age",
        type=duration_arg,
        default=30 * 86400.0,
        metavar="DURATION",
        help="delete run records older than this (default: 30d); per-task limits "
        "(successfulRunsHistoryLimit, failedRunsHistoryLimit) apply too; 0 keeps them forever",
    )
    group.add_argument(
        "--housekeeping-interval",
        type=INTERVAL,
        default=600.0,
        metavar="DURATION",
        help="how often history retention is enforced (default: 10m)",
    )


def _observability(parser: argparse.ArgumentParser) -> None:
    """Metrics and logs."""
    group = parser.add_argument_group("metrics and logs")
    group.add_argument(
        "--metrics-per-task-histograms",
        action="store_true",
        help="give crontask_run_duration_seconds a task label. Costs 17 series per task "
        "(14 buckets, +Inf, _sum, _count) where there are 17 in all without it: at 10 000 "
        "tasks 170 000 more series, about 12 MB more text per scrape (0.7 MB gzipped). "
        "See README, Metrics",
    )
    group.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    group.add_argument("--log-format", default="logfmt", choices=["logfmt", "json"])


def namespace_flag(text: str) -> str | None:
    """A namespace flag's value: a DNS-1123 label, or nothing (``--namespace=`` of a template
    whose value is empty: the default, as before labels were checked)."""
    return label(text) if text else None


def env_name(text: str) -> str:
    name, given, _ = text.partition("=")
    if given and valid_name(name):  # NAME=value: the value is often a secret, never shown
        raise argparse.ArgumentTypeError(
            f"'{name}=...' is not an environment variable name: set {name} in crontask's "
            f"environment and write --pass-env {name}"
        )
    if not valid_name(text):
        shown = f"{name}=..." if given else text  # whatever the name, never the value
        raise argparse.ArgumentTypeError(
            f"{shown!r} is not an environment variable name (letters, digits, _; not a digit first)"
        )
    return text


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import daemon

    return daemon.run(args)


def _allowed_host(text: str) -> str:
    try:
        return allowed_host(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# --git-memory-limit: below 64 MiB git cannot even start (some 30 MiB) and fetch.
_GIT_MEMORY_RANGE = (64 * 1024**2, 1024**4)


def _git_memory_limit(text: str) -> int:
    try:
        size = parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    low, high = _GIT_MEMORY_RANGE
    if not low <= size <= high:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range ({format_size(low)} to {format_size(high)})"
        )
    return size
