"""Which kubeconfig context crontask connects with: the one kubectl uses.

``KUBECONFIG=a:b`` merges the files. kubectl (client-go) lets the first file win everywhere: a
context, cluster or user is the first file's that names it, and ``current-context`` is the
first non-empty one (an empty or missing one is passed over). The Python client's merger
(``kubernetes.config.kube_config.KubeConfigMerger``) merges the lists first-wins as well, but
each file that sets ``current-context`` overrides the one before: the LAST one wins. crontask
started from a workstation then watched, ran Jobs on and wrote status to another cluster than
the one ``kubectl`` shows. So the context is chosen here by kubectl's rule and passed to the
client by name; the lists the client merges already agree with kubectl's.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml
from kubernetes import config


@dataclasses.dataclass(frozen=True)
class Loaded:
    api: Any  # the ApiClient
    context: str
    namespace: str  # the context's, else "default"


@dataclasses.dataclass(frozen=True)
class Merged:
    """What crontask takes from the kubeconfig files itself, merged as kubectl merges them."""

    current_context: str | None  # None: no file sets one
    namespaces: dict[str, str]  # a context's namespace ("" if none), by its name


def merged(spec: str) -> Merged:
    """The kubeconfig files of ``spec`` (``os.pathsep``-separated, as ``$KUBECONFIG`` and as
    the client splits it) merged by kubectl's rules: ``current-context`` is the first file's
    that sets a non-empty one, a context the first file's that names it. Empty entries and
    missing files are skipped, as kubectl and the client skip them.

    Raises ConfigException for a file that is no YAML (kubectl refuses it too), OSError for one
    that cannot be read."""
    current: str | None = None
    namespaces: dict[str, str] = {}
    read = False
    for entry in spec.split(os.pathsep):
        if not entry:
            continue
        path = Path(entry).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        read = True
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as err:
            # One line: the client's own error (raised first before) spanned several.
            said = " ".join(str(err).split())
            raise config.ConfigException(f"{path} is not a kubeconfig: {said}") from None
        if document is None:
            continue  # empty: the client refuses it, in its words
        if not isinstance(document, dict):
            raise config.ConfigException(f"{path} is not a kubeconfig: no mapping")
        name = document.get("current-context")
        if current is None and isinstance(name, str) and name:
            current = name
        contexts = document.get("contexts")
        for context in contexts if isinstance(contexts, list) else ():
            if isinstance(context, dict) and isinstance(context.get("name"), str):
                inner = context.get("context")
                namespace = inner.get("namespace") if isinstance(inner, dict) else None
                namespaces.setdefault(context["name"], str(namespace or ""))
    if not read:  # a typo in --kubeconfig or $KUBECONFIG: not "current-context is not set"
        raise config.ConfigException(f"no such file: {spec}")
    return Merged(current, namespaces)


def load(spec: str, context: str | None = None) -> Loaded:
    """The API client of ``context`` (None: kubectl's current-context) of the kubeconfig files
    of ``spec``, and that context's namespace.

    Raises ConfigException (no current-context, an unknown context, a bad file) or OSError."""
    files = merged(spec)
    chosen = context or files.current_context
    if chosen is None:
        raise config.ConfigException(
            "current-context is not set (kubectl config use-context NAME sets it)"
        )
    # context= by name: the client's own choice would be the last file's current-context. It
    # refuses a context no file names; the namespace is then the one read above.
    api = config.new_client_from_config(config_file=spec, context=chosen)  # type: ignore[no-untyped-call]
    return Loaded(api, chosen, files.namespaces.get(chosen) or "default")
