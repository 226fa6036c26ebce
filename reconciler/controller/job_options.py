"""What of the ``job`` action a crontask needs before it knows whether it has Kubernetes, with
no Kubernetes client imported: ``--job-namespace`` / ``--kubeconfig`` (:class:`JobOptions`), and
a source seen without Jobs (:class:`WithoutJobs`: each ``job`` task a definition error that says
so). A crontask without Kubernetes never loads ``controller.jobs``, nor the client behind it
(a quarter of its start's imports)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Collection
from pathlib import Path

from reconciler.core.desired import Definition, DefinitionError
from reconciler.sources.base import Notify, Ready, Source, SourceState

NO_CONNECTION_REASON = (
    "this crontask has no Kubernetes connection, so it cannot create Jobs "
    "(start it with --kubernetes or --kubeconfig FILE)"
)
NO_CONNECTION = f"spec.job: {NO_CONNECTION_REASON}"


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """``--job-namespace`` and, without ``--kubernetes``, ``--kubeconfig``: the connection for
    Jobs alone (no CronTask resources are read then)."""

    namespace: str | None = None  # None: the pod's namespace, else the kubeconfig context's
    kubeconfig: Path | None = None
    context: str | None = None  # None: the kubeconfig's current-context


class WithoutJobs:
    """A source as a crontask without Kubernetes sees it: ``job`` tasks are errors. A task that
    ran something else before it became a ``job`` task keeps that last good definition, as a
    task whose file breaks does (``in_force``: what is in force now, read before the pass)."""

    def __init__(self, source: Source, in_force: Callable[[str], Definition | None]) -> None:
        self.source = source
        self.kind = source.kind
        self._in_force = in_force
        self._errors: dict[str, DefinitionError] = {}
        self._kept: dict[str, Definition] = {}

    @property
    def authoritative(self) -> bool:
        return self.source.authoritative

    def refresh(self, hints: Collection[str] | None = None) -> set[str]:
        changed = self.source.refresh(hints)
        # Only what changed is looked at again: an edit costs the same at any number of tasks.
        found = self.source.definitions() if hints is None else self.source.definitions_of(changed)
        if hints is None:
            self._errors.clear()
            self._kept.clear()
        for key in changed:
            self._errors.pop(key, None)
            self._kept.pop(key, None)
        for definition in found:
            if definition.task.spec.job is None:
                continue
            key = definition.key
            error = self._errors[key] = DefinitionError(definition.location, NO_CONNECTION, key)
            before = self._in_force(key)
            ran = before is not None and before.task.spec.job is None
            if before is not None and ran and before.location.source == self.kind:
                self._kept[key] = dataclasses.replace(before, error=str(error))
        return changed

    def definitions(self) -> list[Definition]:
        found = [d for d in self.source.definitions() if d.task.spec.job is None]
        return found + list(self._kept.values())

    def definitions_of(self, keys: Collection[str]) -> list[Definition]:
        found = [d for d in self.source.definitions_of(keys) if d.task.spec.job is None]
        return found + [self._kept[key] for key in keys if key in self._kept]

    def errors(self) -> list[DefinitionError]:
        return [*self.source.errors(), *self._errors.values()]

    def status(self) -> SourceState:
        return self.source.status()

    async def watch(self, notify: Notify, ready: Ready, stop: asyncio.Event) -> None:
        await self.source.watch(notify, ready, stop)
