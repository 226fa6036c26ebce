"""Each member's crontask version, so that an operator can tell the replicas of a rolling
update apart: announced with every renewal (this process's ``reconciler.__version__`` unless
told), read back for every member by each backend. A member of the previous release announces
none: it reads as unknown (None), never as an error; nor does a value someone else wrote
(a Lease annotation, a row) that is no version break the listing.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from kubernetes import client
from sqlalchemy.dialects.postgresql import insert as pg_insert

import reconciler
from reconciler.membership.base import Announcement, Member, Membership, readable_version
from reconciler.membership.leases import LeaseMembership, lease_name
from reconciler.membership.memory import MemoryMembership, Registry
from tests.store.conftest import PG_ENV

VERSION = "crontask.dev/version"


def me(name: str, **fields: Any) -> Announcement:
    return Announcement(id=f"{name}:1:{name}", **{"lease_seconds": 15.0, **fields})


def versions(members: list[Member]) -> dict[str, str | None]:
    return {m.id: m.version for m in members}


def test_a_replica_announces_the_version_it_runs() -> None:
    assert Announcement("a:1:a").version == reconciler.__version__


@pytest.mark.parametrize(
    ("given", "read"),
    [
        ("0.2.0", "0.2.0"),
        ("1.0.0rc1.post2.dev3+g1234abc.d20261205", "1.0.0rc1.post2.dev3+g1234abc.d20261205"),
        (None, None),
        ("", None),
        ("9" * 65, None),  # longer than the column holds
        ("0.2.0\x1b[2J", None),
        ("0.2.0 <script>", None),
        ("0.2.0\n", None),
        (42, None),
    ],
)
def test_what_reads_as_a_version(given: object, read: str | None) -> None:
    assert readable_version(given) == read


@pytest.fixture
def replicas(request: pytest.FixtureRequest) -> Iterator[tuple[Membership, Membership]]:
    kind = request.param
    if kind == "memory":
        registry = Registry(lambda: datetime(2026, 12, 5, 3, tzinfo=UTC))
        yield MemoryMembership(registry), MemoryMembership(registry)
    elif kind == "postgres":
        if not os.environ.get(PG_ENV):
            pytest.skip(f"set {PG_ENV}")
        from reconciler.store import open_store
        from reconciler.store.members import SqlMembership

        url = request.getfixturevalue("pg_url")
        open_store(url).close()
        a, b = SqlMembership.open(url), SqlMembership.open(url)
        yield a, b
        a.close()
        b.close()
    else:
        api = request.getfixturevalue("k8s_api_client")
        namespace = f"members-{uuid.uuid4().hex[:8]}"
        yield LeaseMembership(api, namespace), LeaseMembership(api, namespace)


BACKENDS = ["memory", pytest.param("postgres", marks=pytest.mark.postgres), "leases"]


@pytest.mark.parametrize("replicas", BACKENDS, indirect=True)
def test_each_member_is_read_with_the_version_it_announced(
    replicas: tuple[Membership, Membership],
) -> None:
    a, b = replicas
    a.renew(me("a", version="0.2.0"))
    b.renew(me("b", version="0.3.0"))
    assert versions(a.renew(me("a", version="0.2.0"))) == {"a:1:a": "0.2.0", "b:1:b": "0.3.0"}
    # one that announces none (as the previous release does) is unknown, and still a member
    b.renew(me("b", version=None))
    assert versions(a.renew(me("a", version="0.2.0"))) == {"a:1:a": "0.2.0", "b:1:b": None}


@pytest.mark.parametrize("replicas", BACKENDS, indirect=True)
def test_a_version_that_is_none_is_announced_as_unknown(
    replicas: tuple[Membership, Membership],
) -> None:
    """A value that is no version (a build's odd string) is not written: it must not fail a
    renewal (a value longer than the column would, and the replica would fence)."""
    a, b = replicas
    b.renew(me("b", version="9" * 300))
    assert versions(a.renew(me("a"))) == {"a:1:a": reconciler.__version__, "b:1:b": None}


@pytest.mark.postgres
def test_a_row_of_the_previous_release_reads_as_unknown(pg_url: str) -> None:
    """The previous release upserts its row through the members table as it declares it (no
    version column) and reads the live rows through the same: both work on the upgraded
    schema, and the new replicas see it as a member of unknown version."""
    from reconciler.store import open_store
    from reconciler.store.members import SqlMembership
    from reconciler.store.sql_schema import members

    open_store(pg_url).close()
    new = SqlMembership.open(pg_url)
    try:
        new.renew(me("new", version="0.3.0"))
        as_0006 = sa.Table(
            "members",
            sa.MetaData(),
            *(sa.Column(c.name, c.type) for c in members.columns if c.name != "version"),
            sa.PrimaryKeyConstraint("id"),
        )
        row = {"id": "old:1:old", "lease_seconds": 15.0, "owned": 1, "draining": False}
        upsert = pg_insert(as_0006).values(since=sa.func.now(), renewed=sa.func.now(), **row)
        with new.engine.begin() as conn:
            for _ in range(2):  # its join, then a renewal
                conn.execute(
                    upsert.on_conflict_do_update(
                        index_elements=[as_0006.c.id], set_={"renewed": sa.func.now()}
                    )
                )
            listed = conn.execute(sa.select(as_0006.c.id).order_by(as_0006.c.id)).scalars()
            assert list(listed) == ["new:1:new", "old:1:old"]
        assert versions(new.renew(me("new", version="0.3.0"))) == {
            "new:1:new": "0.3.0",
            "old:1:old": None,
        }
    finally:
        new.close()


@pytest.mark.postgres
def test_a_row_whose_version_is_no_version_is_a_member_of_unknown_version(pg_url: str) -> None:
    from reconciler.store import open_store
    from reconciler.store.members import SqlMembership

    open_store(pg_url).close()
    a, b = SqlMembership.open(pg_url), SqlMembership.open(pg_url)
    try:
        b.renew(me("b"))
        with a.engine.begin() as conn:
            conn.execute(sa.text("UPDATE members SET version = E'0.2\\x1b[2J' WHERE id = 'b:1:b'"))
        assert versions(a.renew(me("a"))) == {"a:1:a": reconciler.__version__, "b:1:b": None}
    finally:
        a.close()
        b.close()


def _annotate(api: Any, namespace: str, who: Announcement, notes: dict[str, Any]) -> None:
    """What ``kubectl annotate lease`` sends: a merge patch of the annotations."""
    httpx.patch(
        f"{api.configuration.host}/apis/coordination.k8s.io/v1/namespaces/{namespace}"
        f"/leases/{lease_name(who.id)}",
        content=json.dumps({"metadata": {"annotations": notes}}),
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=5,
    ).raise_for_status()


def _notes(api: Any, namespace: str, who: Announcement) -> dict[str, str]:
    found: Any = client.CoordinationV1Api(api).read_namespaced_lease(
        lease_name(who.id), namespace, _preload_content=False
    )
    notes = json.loads(found.data)["metadata"].get("annotations") or {}
    assert isinstance(notes, dict)
    return notes


@pytest.mark.parametrize(
    "hostile",
    ["x" * 5000, "0.2.0\x1b]0;owned\x07", "", "0.2.0 (patched)", "v" * 65],
)
def test_a_hostile_version_annotation_is_unknown_and_the_listing_goes_on(
    k8s_api_client: Any, hostile: str
) -> None:
    namespace = f"members-{uuid.uuid4().hex[:8]}"
    a = LeaseMembership(k8s_api_client, namespace)
    b = LeaseMembership(k8s_api_client, namespace)
    b.renew(me("b", version="0.3.0"))
    assert _notes(k8s_api_client, namespace, me("b"))[VERSION] == "0.3.0"
    _annotate(k8s_api_client, namespace, me("b"), {VERSION: hostile})
    assert versions(a.renew(me("a", version="0.3.0"))) == {"a:1:a": "0.3.0", "b:1:b": None}
    # its next renewal writes its own again
    b.renew(me("b", version="0.3.0"))
    assert versions(a.renew(me("a", version="0.3.0")))["b:1:b"] == "0.3.0"


def test_a_lease_of_the_previous_release_has_no_version_and_is_a_member(
    k8s_api_client: Any,
) -> None:
    namespace = f"members-{uuid.uuid4().hex[:8]}"
    a = LeaseMembership(k8s_api_client, namespace)
    b = LeaseMembership(k8s_api_client, namespace)
    b.renew(me("b", version=None))
    assert VERSION not in _notes(k8s_api_client, namespace, me("b"))
    assert versions(a.renew(me("a", version="0.3.0"))) == {"a:1:a": "0.3.0", "b:1:b": None}
