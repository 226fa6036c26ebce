"""API-owned tasks in the shared run store (``api_tasks``): with replicas, every replica reads
the same ones. Each write is one statement whose condition is the expectation, so two replicas
writing one key at once cannot both succeed: a create is an INSERT that does nothing on a
conflict, a conditional replace an UPDATE of that version only. A document over ``MAX_TEXT``
bytes (put there by something else than crontask) is not even fetched: ``load`` gives an
``UnreadableText`` for it, as the files do. See ``reconciler.sources.api`` for the contract."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

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
from reconciler.store.sql_errors import translated_errors
from reconciler.store.sql_schema import api_tasks, create_engine

_c = api_tasks.c


class SqlApiTasks:
    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("API tasks in the database need PostgreSQL")
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> SqlApiTasks:
        return cls(create_engine(url))

    def version(self, key: str) -> str | None:
        check_key(key)
        with translated_errors(), self.engine.connect() as conn:
            found = conn.execute(sa.select(_c.version).where(_c.key == key)).scalar()
        return None if found is None else str(found)

    def versions(self) -> dict[str, str]:
        with translated_errors(), self.engine.connect() as conn:
            return {row[0]: row[1] for row in conn.execute(sa.select(_c.key, _c.version))}

    def load(self, keys: Collection[str] | None = None) -> dict[str, str | UnreadableText]:
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

    def write(self, key: str, text: str, *, expect: str | None = None) -> str:
        check_key(key)
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

    def remove(self, key: str, *, expect: str | None = None) -> None:
        check_key(key)
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
