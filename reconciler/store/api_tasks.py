"""API-owned tasks in the shared run store (``api_tasks``): with replicas, every replica reads
the same ones. Each write is one statement whose condition is the expectation, so two replicas
writing one key at once cannot both succeed: a create is an INSERT that does nothing on a
conflict, a conditional replace an UPDATE of that version only. A document over ``MAX_TEXT``
bytes (put there by something else than crontask) is not even fetched: ``load`` gives an
``UnreadableText`` for it, as the files do. See ``reconciler.sources.api`` for the contract.

Every call waits ``CALL_WAIT`` for the database at most, then is :class:`StoreUnavailable`: a
database that stops answering without refusing (a network dropping packets, a frozen server)
holds a call for as long as it is silent, the kernel acknowledging every byte (an API write held
a place of the API and its key's lock for the whole outage, 122 s seen). The call goes on in its
daemon thread: a write given up on may still be stored once the database answers, so another
write or removal of that key is refused at once meanwhile (it could land before the first,
which would then win), as is every call once ``LATE_MAX`` given up on still wait."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from concurrent.futures import wait as _wait
from datetime import UTC, datetime
from typing import Final, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine

from reconciler.core.api_tasks import (
    MAX_TEXT,
    MISSING,
    AlreadyExists,
    UnreadableText,
    VersionMismatch,
    check_key,
    version_of,
)
from reconciler.resolver import in_own_thread
from reconciler.store.base import StoreUnavailable
from reconciler.store.sql_errors import translated_errors
from reconciler.store.sql_schema import api_tasks, create_engine

T = TypeVar("T")

_c = api_tasks.c
# Seconds a call waits for the database (see the module): an API write makes a few, and its
# answer must come well within the API's 30 s; a live database answers in milliseconds.
CALL_WAIT: Final = 5.0
# Seconds the read of every task waits (a full refresh, off the API's requests): 100 000
# documents take seconds from a live database, and a bound that cut them short would leave the
# API's tasks unread for good.
WHOLE_WAIT: Final = 60.0
# Calls given up on that may still wait for the database (each holds a thread and a
# connection) before every new call is refused at once.
LATE_MAX: Final = 4


class SqlApiTasks:
    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("API tasks in the database need PostgreSQL")
        self.engine = engine
        self._wait = CALL_WAIT
        self._guard = threading.Lock()
        self._late: dict[object, str | None] = {}  # calls given up on: the key each writes

    @classmethod
    def open(cls, url: str) -> SqlApiTasks:
        return cls(create_engine(url))

    def version(self, key: str) -> str | None:
        check_key(key)
        return self._bounded(lambda: self._version(key))

    def versions(self) -> dict[str, str]:
        return self._bounded(self._versions)

    def load(self, keys: Collection[str] | None = None) -> dict[str, str | UnreadableText]:
        if keys is not None and not keys:
            return {}
        return self._bounded(lambda: self._load(keys), wait=WHOLE_WAIT if keys is None else None)

    def write(self, key: str, text: str, *, expect: str | None = None) -> str:
        check_key(key)
        return self._bounded(lambda: self._write(key, text, expect), writes=key)

    def remove(self, key: str, *, expect: str | None = None) -> None:
        check_key(key)
        self._bounded(lambda: self._remove(key, expect), writes=key)

    def _bounded(
        self, call: Callable[[], T], writes: str | None = None, wait: float | None = None
    ) -> T:
        """``call``'s outcome if it comes within ``wait`` (by default ``CALL_WAIT``: see the
        module), else StoreUnavailable; ``writes``: the key it writes or removes."""
        waited = self._wait if wait is None else max(wait, self._wait)
        with self._guard:
            if writes is not None and writes in self._late.values():
                raise StoreUnavailable(
                    f"an earlier write of {writes} still waits for the database (it may yet "
                    "be stored)"
                )
            if len(self._late) >= LATE_MAX:
                raise StoreUnavailable(f"{len(self._late)} calls still wait for the database")
        done = in_own_thread(call, "crontask-api-tasks")
        if _wait([done], timeout=waited).done:
            return done.result()
        token = object()
        with self._guard:
            self._late[token] = writes
        done.add_done_callback(lambda _: self._answered(token))
        said = "" if writes is None else f" (the write of {writes} may yet be stored)"
        raise StoreUnavailable(f"the database did not answer within {waited:g}s{said}")

    def _answered(self, token: object) -> None:
        with self._guard:
            del self._late[token]

    def _version(self, key: str) -> str | None:
        with translated_errors(), self.engine.connect() as conn:
            found = conn.execute(sa.select(_c.version).where(_c.key == key)).scalar()
        return None if found is None else str(found)

    def _versions(self) -> dict[str, str]:
        with translated_errors(), self.engine.connect() as conn:
            return {row[0]: row[1] for row in conn.execute(sa.select(_c.key, _c.version))}

    def _load(self, keys: Collection[str] | None) -> dict[str, str | UnreadableText]:
        size = sa.func.octet_length(_c.document)
        # The size first, and the document only within the bound: a 1 GB row is not fetched.
        query = sa.select(_c.key, _c.version, size, sa.case((size <= MAX_TEXT, _c.document)))
        if keys is not None:
            wanted = sorted(set(keys))
            if not wanted:
                return {}
            query = query.where(_c.key.in_(wanted))
        with translated_errors(), self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {key: _text(version, size, document) for key, version, size, document in rows}

    def _write(self, key: str, text: str, expect: str | None) -> str:
        version = version_of(text)
        now = datetime.now(UTC)
        values = {"key": key, "document": text, "version": version, "updated_at": now}
        with translated_errors(), self.engine.begin() as conn:
            if expect == MISSING:
                insert = (
                    pg_insert(api_tasks)
                    .values(**values)
                    .on_conflict_do_nothing(index_elements=[_c.key])
                    .returning(_c.key)
                )
                if conn.execute(insert).first() is None:  # the key was there already
                    raise AlreadyExists(key)
            elif expect is not None:
                update = (
                    api_tasks.update()
                    .where(_c.key == key, _c.version == expect)
                    .values(document=text, version=version, updated_at=now)
                )
                if conn.execute(update).rowcount == 0:
                    current = conn.execute(sa.select(_c.version).where(_c.key == key)).scalar()
                    raise VersionMismatch(key, None if current is None else str(current))
            else:
                upsert = pg_insert(api_tasks).values(**values)
                conn.execute(
                    upsert.on_conflict_do_update(
                        index_elements=[_c.key],
                        set_={"document": text, "version": version, "updated_at": now},
                    )
                )
        return version

    def _remove(self, key: str, expect: str | None) -> None:
        delete = api_tasks.delete().where(_c.key == key)
        if expect is not None and expect != MISSING:
            delete = delete.where(_c.version == expect)
        with translated_errors(), self.engine.begin() as conn:
            if conn.execute(delete).rowcount == 1:
                return
            current = conn.execute(sa.select(_c.version).where(_c.key == key)).scalar()
        if current is None:
            raise KeyError(key)
        raise VersionMismatch(key, str(current))


def _text(version: str, size: int, document: str | None) -> str | UnreadableText:
    if document is not None:
        return document
    # The row's version stands for its bytes: it is what ``versions`` says of the key.
    reason = (
        f"the stored task is {size} bytes, over the limit of {MAX_TEXT // (1024 * 1024)} MiB: "
        "not read (PUT or DELETE the task to replace it)"
    )
    return UnreadableText(reason, str(version))
