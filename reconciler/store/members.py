"""Membership in the shared PostgreSQL database: one ``members`` row per live replica.

A renewal is one statement that upserts this replica's row with ``renewed = now()`` and returns
every row renewed within its lease of the database's ``now()``: the database's clock is the only
one that judges, so replicas with skewed clocks agree. A row's lease is its own
``lease_seconds``, whatever this replica's (``membership.base.judged_lease``, as the Lease
backend judges): a replica fences itself at its own renew deadline, so one started with a longer
``--lease-duration`` than ours, judged by ours, was taken for dead between two healthy renewals,
its runs marked interrupted and its tasks taken. A row stating another lease than ours is
logged once per member (``membership.base.OtherLeases``). A row left by a dead replica simply
stops being returned; rows expired for ten of their leases are deleted by whoever renews, so the
table stays as small as the set of replicas, and their published views go with them. See
``reconciler.membership.base`` for the contract.

Any client of the database can write a row, so no row may break a renewal: a row whose
``lease_seconds`` is outside what ``--lease-duration`` accepts
(``membership.base.LONGEST_LEASE`` at most: none is live longer), whose ``since`` or ``renewed``
is not a date Python can hold (``'infinity'``, a date BC: loading one would fail the whole
renewal, and every replica would fence), or which was renewed further in the future than the
shorter of its lease and ours (a replica dates its row with the database's clock, so its row
is never ahead by more than a transaction's length) is not a member, and is forgotten at once. The
interval arithmetic is only done on rows that passed that check (in a ``CASE``, whose order
PostgreSQL keeps), since one out-of-range interval fails the whole statement. A ``version`` that
does not read as one (``membership.base.readable_version``) is unknown, and none is written for
one that would not be; a row of the release before versions (which writes none) is a member of
unknown version. At most ``most`` live rows are read (``membership.base.Cap``): this replica's,
those it knows, then those with a digest, then those renewed nearest the database's ``now()`` (a
replica renews every interval; a row dated ahead of it is no fresher).

Each renewal also reads the database's clock (never moved by a test's ``offset``), against
which ``membership.clock`` estimates how far this replica's clock is off (``clock_offset``):
replicas time slots by their own clocks, so nothing else would tell that they disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine

from reconciler.membership.base import (
    LONGEST_LEASE,
    MOST_MEMBERS,
    Announcement,
    Cap,
    Difference,
    Member,
    MembershipUnavailable,
    OtherLeases,
    readable_version,
)
from reconciler.membership.clock import ClockWatch
from reconciler.store.base import StoreUnavailable
from reconciler.store.members_cut import Cutter
from reconciler.store.sql_errors import translated_errors
from reconciler.store.sql_schema import (
    UTCDateTime,
    create_engine,
    member_views,
    members,
)

# A row not renewed for this many lease durations is deleted (it is long dead).
_FORGET_AFTER: Final = 10
# The range of --lease-duration (reconciler.cli.durations): 0.1 s to 100 years.
_LEAST_LEASE: Final = 0.1

# The dates psycopg loads (years 1 to 9999), with a day to spare for the session's time zone.
_EARLIEST: Final = datetime(1, 1, 2, tzinfo=UTC)
_LATEST: Final = datetime(9999, 12, 30, tzinfo=UTC)


def _loadable(column: sa.Column[datetime]) -> Any:
    # 'infinity' and '-infinity' are outside too.
    return column.between(sa.literal(_EARLIEST, UTCDateTime()), sa.literal(_LATEST, UTCDateTime()))


# Every number and date the live rows are loaded with, or computed from, is checked here.
_SANE = sa.and_(
    members.c.lease_seconds >= _LEAST_LEASE,
    members.c.lease_seconds <= LONGEST_LEASE,  # NaN is greater than every number in PostgreSQL
    _loadable(members.c.renewed),
    _loadable(members.c.since),
)


def _lease(ours: float, times: int = 1) -> Any:
    """A row's lease as an interval: its own, within ``membership.base.judged_lease``'s bound
    (the rule written in SQL; ``_SANE`` has refused longer ones already)."""
    bound = sa.literal(max(ours, LONGEST_LEASE), sa.Float())
    return _interval(sa.func.least(members.c.lease_seconds, bound), times)


def _shorter_lease(ours: float) -> Any:
    """The shorter of a row's lease and ours, as an interval: how far ahead of ``now()`` a row
    may be dated (see the module docstring); a lease is no reason to believe a date."""
    return _interval(sa.func.least(members.c.lease_seconds, sa.literal(ours, sa.Float())))


def _interval(seconds: Any, times: int = 1) -> Any:
    return sa.func.make_interval(0, 0, 0, 0, 0, 0, seconds * times)


class SqlMembership:
    """``offset`` moves the judging clock (``now()``) by that many seconds: tests let time
    pass with it instead of sleeping; crontask leaves it at zero. ``clock`` is this replica's
    own, compared with the database's at each renewal (``clock_offset``)."""

    def __init__(
        self,
        engine: Engine,
        *,
        offset: Callable[[], float] = lambda: 0.0,
        most: int = MOST_MEMBERS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("membership in the database needs PostgreSQL")
        self.engine = engine
        self._offset = offset
        self._cap = Cap(most)
        self._other_leases = OtherLeases(most)
        self._clock = clock
        self.clock_watch = ClockWatch()
        self._cutter = Cutter(engine)

    @classmethod
    def open(
        cls, url: str, *, offset: Callable[[], float] = lambda: 0.0, most: int = MOST_MEMBERS
    ) -> SqlMembership:
        """The members table of the (already migrated) store at ``url``."""
        return cls(create_engine(url), offset=offset, most=most)

    def _now(self) -> Any:
        offset = self._offset()
        if not offset:
            return sa.func.now()
        return sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, offset)

    @property
    def live_count(self) -> int:
        return self._cap.live

    @property
    def clock_offset(self) -> float | None:
        return self.clock_watch.seconds

    def renew(self, me: Announcement) -> list[Member]:
        _NOW = self._now()
        values = {
            "id": me.id,
            "address": me.address,
            "renewed": _NOW,
            "lease_seconds": me.lease_seconds,
            "digest": me.digest,
            "revision": me.revision,
            "owned": me.owned,
            "draining": me.draining,
            # Bounded and checked: a value the column refuses would fail the renewal.
            "version": readable_version(me.version),
        }
        insert = pg_insert(members).values(since=_NOW, **values)
        expires = members.c.renewed + _lease(me.lease_seconds)
        # A record that expired meanwhile is a new membership: its "since" starts again.
        # A row that was not sane (see above) is a new membership too.
        renewing = sa.case((_SANE, expires >= _NOW), else_=False)
        upsert = insert.on_conflict_do_update(
            index_elements=[members.c.id],
            set_={
                **{k: insert.excluded[k] for k in values if k != "id"},
                "since": sa.case((renewing, members.c.since), else_=_NOW),
            },
        )
        # Live: sane, not expired, and not renewed further ahead than its lease (a row dated
        # in the future would otherwise be live until then, and never forgotten).
        ahead = members.c.renewed > _NOW + _shorter_lease(me.lease_seconds)
        live_row = sa.case((_SANE, sa.and_(expires > _NOW, ~ahead)), else_=False)
        forgotten = members.c.renewed + _lease(me.lease_seconds, _FORGET_AFTER) < _NOW
        dead_row = sa.case((_SANE, sa.or_(forgotten, ahead)), else_=True)
        # Views whose member has no row any more (forgotten now, or before views were).
        orphans = member_views.delete().where(
            ~sa.exists().where(members.c.id == member_views.c.member)
        )
        try:
            with (
                translated_errors(),
                self._cutter.bounded(me.budget),
                self.engine.begin() as conn,
            ):
                self._set_timeouts(conn, me)
                conn.execute(upsert)
                conn.execute(members.delete().where(dead_row))
                conn.execute(orphans)
                # Around the statement that reads the database's clock only: timed from before
                # the upsert, a wait on our row's lock made an exact clock half the wait off.
                before = self._clock()
                rows = conn.execute(self._live(me, live_row, _NOW)).mappings().all()
                after = self._clock()
        except StoreUnavailable as err:
            said = str(err)
            if self._cutter.tripped:  # not psycopg's "server closed the connection"
                said = f"the run store did not answer the renewal in {me.budget:.1f} s"
            raise MembershipUnavailable(said) from err
        if rows:  # our own row is always among them
            self.clock_watch.note(before, after, rows[0]["db_now"])
        self._cap.count(rows[0]["live"] if rows else 0)
        rows = sorted(rows, key=lambda row: str(row["id"]))
        for row in rows:
            if row["id"] != me.id:
                self._other_leases.note(row["id"], row["lease_seconds"], me.lease_seconds)
        return [
            Member(
                id=row["id"],
                address=row["address"],
                since=row["since"],
                renewed=row["renewed"],
                digest=row["digest"],
                revision=row["revision"],
                owned=row["owned"],
                draining=row["draining"],
                # Anyone may write a row: one that is no version is unknown (None).
                version=readable_version(row["version"]),
            )
            for row in rows
        ]

    def _live(self, me: Announcement, live_row: Any, now: Any) -> Any:
        """The live rows, at most ``most`` of them (see the module docstring), each with how
        many are live (counted before the limit)."""
        distance = sa.func.abs(sa.extract("epoch", members.c.renewed - now))
        # The database's clock, never moved by ``offset``: what ours is compared with. As this
        # statement began, not the transaction (now()): surely within the round trip we time.
        db_now = sa.func.statement_timestamp(type_=UTCDateTime()).label("db_now")
        return (
            sa.select(members, sa.func.count().over().label("live"), db_now)
            .where(live_row)
            .order_by(
                (members.c.id == me.id).desc(),
                members.c.id.in_(sorted(me.known)).desc(),
                members.c.digest.is_(None),  # false first
                distance,
                members.c.id,
            )
            .limit(self._cap.most)
        )

    @staticmethod
    def _set_timeouts(conn: Connection, me: Announcement) -> None:
        """A renewal that waits on a lock or a slow database fails within its budget (below
        the renew deadline) instead of returning, late, a record already old."""
        if me.budget is None:
            return
        ms = str(max(1, int(me.budget * 1000)))
        for setting in ("lock_timeout", "statement_timeout"):
            conn.execute(sa.select(sa.func.set_config(setting, ms, True)))

    def leave(self, me: Announcement) -> None:
        try:
            with translated_errors(), self.engine.begin() as conn:
                conn.execute(members.delete().where(members.c.id == me.id))
        except StoreUnavailable as err:
            raise MembershipUnavailable(str(err)) from err

    def close(self) -> None:
        self.engine.dispose()


class SqlViews:
    """Each replica's view of the desired set, one row per (member, task), in the shared store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def publish(self, member: str, changes: Mapping[str, str | None]) -> None:
        gone = [key for key, value in changes.items() if value is None]
        rows = [
            {"member": member, "key": key, "hash": value}
            for key, value in changes.items()
            if value is not None
        ]
        with translated_errors(), self.engine.begin() as conn:
            for chunk in _chunks(gone):
                conn.execute(
                    member_views.delete().where(
                        member_views.c.member == member, member_views.c.key.in_(chunk)
                    )
                )
            for chunk in _chunks(rows):
                insert = pg_insert(member_views).values(chunk)
                conn.execute(
                    insert.on_conflict_do_update(
                        index_elements=[member_views.c.member, member_views.c.key],
                        set_={"hash": insert.excluded.hash},
                    )
                )

    def differing(self, members: Collection[str], limit: int = 20) -> list[Difference]:
        names = sorted(set(members))
        if len(names) < 2:
            return []
        mine = member_views.c.member.in_(names)
        keys = (
            sa.select(member_views.c.key)
            .where(mine)
            .group_by(member_views.c.key)
            .having(
                sa.or_(
                    sa.func.count() < len(names),
                    sa.func.count(sa.distinct(member_views.c.hash)) > 1,
                )
            )
            .order_by(member_views.c.key)
            .limit(limit)
        )
        # One snapshot for both reads: in READ COMMITTED a view published between them (a
        # replica's pass, its view sent again after a lapse) made each key's views a mix of two
        # states, and a key found differing could come back with views all the same.
        with translated_errors(), self.engine.connect() as conn:
            conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                found = [row[0] for row in conn.execute(keys)]
                rows = conn.execute(
                    sa.select(member_views).where(mine, member_views.c.key.in_(found))
                ).all()
        views: dict[str, dict[str, str | None]] = {k: dict.fromkeys(names) for k in found}
        for row in rows:
            views[row.key][row.member] = row.hash
        return [(key, views[key]) for key in found]

    def drop(self, member: str) -> None:
        with translated_errors(), self.engine.begin() as conn:
            conn.execute(member_views.delete().where(member_views.c.member == member))


def _chunks(items: list[Any], size: int = 500) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
