"""Which kubeconfig context crontask connects with: the one kubectl uses.

``KUBECONFIG=a:b`` merges the files. kubectl (client-go) lets the first file win everywhere: a
context, cluster or user is the first file's that names it, and ``current-context`` is the
first non-empty one (an empty or missing one is passed over). The Python client's merger
(``kubernetes.config.kube_config.KubeConfigMerger``) merges the lists first-wins as well, but
each file that sets ``current-context`` overrides the one before: the LAST one wins. crontask
started from a workstation then watched, ran Jobs on and wrote status to another cluster than
the one ``kubectl`` shows. So the context is chosen here by kubectl's rule and passed to the
client by name; the lists the client merges already agree with kubectl's.

A kubeconfig's inline certificates and key (``client-key-data``, as kind and the clouds write
them) are held in memory (``_held_in_memory``): the client writes them to files in ``$TMPDIR``
and removes those only at a normal exit, so each crontask killed, crashed or ended with a thread
still waiting (``os._exit``) left a copy of the key in ``/tmp``, past the key's rotation too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.config import kube_config


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
    # As new_client_from_config, with the files held in memory before the client opens them.
    configuration = type.__call__(client.Configuration)
    with _loading:  # the client's record of the files it wrote is one for the process
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=spec, context=chosen, client_configuration=configuration
        )
        _held_in_memory(configuration)
    api = client.ApiClient(configuration)
    return Loaded(api, chosen, files.namespaces.get(chosen) or "default")


_loading = threading.Lock()
_FILES = ("cert_file", "key_file", "ssl_ca_cert")  # what the client may have written


def _held_in_memory(configuration: Any) -> None:
    """Each file the client wrote for ``configuration`` from inline data, copied to an anonymous
    file in memory (``memfd_create``, closed on exec: no command inherits it) that its
    ``/proc/self/fd`` name opens, and removed, from disk and from the client's record (so that
    another load writes it again, as it does after ``_cleanup_temp_files``). A file the
    kubeconfig names (``client-key:``) is the user's, and left alone. Without memfd (not
    Linux), the client's files stay."""
    if not hasattr(os, "memfd_create"):
        return
    written: dict[str, str] = kube_config._temp_files  # content -> path
    moved: dict[str, str] = {}  # the CA's data may be the certificate's: one file for both
    for name in _FILES:
        path = getattr(configuration, name, None)
        if not isinstance(path, str):
            continue
        if path not in moved and path in written.values():
            with open(path, "rb") as file:
                data = file.read()
            fd = os.memfd_create("crontask-kubeconfig", os.MFD_CLOEXEC)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            moved[path] = f"/proc/self/fd/{fd}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            for content in [key for key, value in written.items() if value == path]:
                del written[content]
        if path in moved:
            setattr(configuration, name, moved[path])
