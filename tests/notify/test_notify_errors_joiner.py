"""With replicas, the definition errors present when a replica starts are told once by the
cluster, not once more by each replica that joins: a replica whose first pass finds a live
member that joined before it takes that pass's errors as told (that member told them), and
tells only what changes after; the first member (alone, or the oldest of a cold start) tells
every error of its first pass, whoever owns it, so that none is left out. Membership on the
in-memory twin (``membership.memory``), seen through what the notifier reads of the cluster,
then through the real ``Cluster``."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconciler.core.assignment import Assignment
from reconciler.core.desired import DefinitionError, DesiredState, Location
from reconciler.membership.base import Announcement, Member
from reconciler.membership.memory import MemoryMembership, Registry
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import Notifier
from reconciler.sinks.notify_config import parse
from tests.controller.test_cluster import Replica as ClusterReplica
from tests.controller.test_cluster import World, settle
from tests.controller.test_reconcile import doc

CONFIG = """\
receivers:
  - {name: hook, type: generic, url: "http://127.0.0.1:9/hook"}
routes:
  - {receiver: hook, events: [definitionError]}
"""


def error(n: int) -> DefinitionError:
    where = Location("file", f"tasks/bad{n}.yaml", 4, 13)
    return DefinitionError(where, "spec.schedule: hour field: 25 is out of range", key=f"d/bad{n}")


BROKEN = tuple(error(n) for n in range(12))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclasses.dataclass
class Replica:
    """One replica's membership as the cluster keeps it (``me``, ``members``), and its
    notifier, whose errors are its own by the assignment over the members it saw last."""

    me: Announcement
    membership: MemoryMembership
    members: list[Member] = dataclasses.field(default_factory=list)
    notifier: Notifier | None = None

    def renew(self) -> None:
        self.members = self.membership.renew(self.me)

    def mine(self, key: str) -> bool:
        return Assignment([m.id for m in self.members], self.me.id).mine(key)

    def told(self, errors: tuple[DefinitionError, ...], folder: Path) -> list[str]:
        """The errors this replica tells after a pass that shows ``errors``."""
        if self.notifier is None:
            config = parse(CONFIG, "n.yaml", folder)
            self.notifier = Notifier(config, metrics=Metrics(), mine=self.mine, replicas=self)
        self.notifier.after_pass(DesiredState({}, errors))
        asyncio.run(self.notifier._drain())
        queue = self.notifier.queues["hook"]
        said = [text for message in queue for text in message.body["errors"]]
        queue.clear()
        return said


def replica(registry: Registry, name: str) -> Replica:
    return Replica(Announcement(name), MemoryMembership(registry))


def texts(errors: tuple[DefinitionError, ...]) -> list[str]:
    return sorted(str(e) for e in errors)


def test_a_replica_that_joins_does_not_tell_again_what_the_others_told(tmp_path: Path) -> None:
    clock = Clock()
    registry = Registry(clock)
    a = replica(registry, "a")
    a.renew()
    assert sorted(a.told(BROKEN, tmp_path)) == texts(BROKEN)  # alone: all of them

    joined = {}
    for name in ("b", "c"):
        clock.now += timedelta(seconds=6)
        joiner = joined[name] = replica(registry, name)
        joiner.renew()
        a.renew()
        joiner.renew()  # it sees ``a`` renew after it joined: alive
        assert joiner.told(BROKEN, tmp_path) == []  # ``a`` told them
        assert a.told(BROKEN, tmp_path) == []

    # What changes after is told, once, by its owner.
    everyone = [a, *joined.values()]
    for each in everyone:
        each.renew()
    new = error(99)
    told = [text for each in everyone for text in each.told((*BROKEN, new), tmp_path)]
    assert told == [str(new)]


def test_a_cold_start_tells_each_error_once(tmp_path: Path) -> None:
    """All start together: each sees the others before its first pass. The oldest (the
    earliest to join) tells every error, the ones the others own too; the others none."""
    clock = Clock()
    registry = Registry(clock)
    replicas = [replica(registry, name) for name in ("c", "a", "b")]
    for each in replicas:
        each.renew()
        clock.now += timedelta(milliseconds=1)
    for each in replicas:
        each.renew()  # each sees all three
    told = {each.me.id: each.told(BROKEN, tmp_path) for each in replicas}
    assert sorted(told["c"]) == texts(BROKEN)  # it joined first
    assert told["a"] == told["b"] == []


def test_a_joiner_alone_tells_them(tmp_path: Path) -> None:
    """The others stopped (their records left): nobody told what the files show now."""
    clock = Clock()
    registry = Registry(clock)
    a = replica(registry, "a")
    a.renew()
    a.told(BROKEN[:3], tmp_path)
    registry.leave(a.me)
    clock.now += timedelta(seconds=6)
    b = replica(registry, "b")
    b.renew()
    assert sorted(b.told(BROKEN, tmp_path)) == texts(BROKEN)


def test_without_replicas_every_error_of_the_first_pass_is_told(tmp_path: Path) -> None:
    notifier = Notifier(parse(CONFIG, "n.yaml", tmp_path), metrics=Metrics())
    notifier.after_pass(DesiredState({}, BROKEN))
    asyncio.run(notifier._drain())
    [message] = notifier.queues["hook"]
    assert sorted(message.body["errors"]) == texts(BROKEN)


def test_through_the_cluster_each_error_is_told_once(tmp_path: Path) -> None:
    """The same with the real ``Cluster`` and reconcilers (``test_cluster``'s in-process
    replicas), the notifier reading the cluster as ``wiring`` hands it over: ``a`` alone tells
    the broken files, ``b`` joining later does not, and a file broken after is told once."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    world = World(folder)
    for n in range(6):
        (folder / f"bad{n}.yaml").write_text(doc(f"bad{n}", "* 25 * * *"))
    config = parse(CONFIG, "n.yaml", tmp_path)

    def notifier(replica: ClusterReplica) -> Notifier:
        made = Notifier(
            config, metrics=Metrics(), mine=replica.reconciler.mine, replicas=replica.cluster
        )
        replica.reconciler.subscribe(lambda result: made.after_pass(result.desired))
        return made

    async def told(made: Notifier) -> list[str]:
        await made._drain()
        queue = made.queues["hook"]
        said = sorted(Path(t.split(":")[0]).name for m in queue for t in m.body["errors"])
        queue.clear()
        return said

    async def main() -> None:
        a, b = world.replicas("a", "b")
        ours = {"a": notifier(a)}
        await a.step()
        assert await told(ours["a"]) == [f"bad{n}.yaml" for n in range(6)]
        world.clocks.advance(6)
        ours["b"] = notifier(b)
        await settle([b, a])
        assert await told(ours["b"]) == await told(ours["a"]) == []
        (folder / "bad9.yaml").write_text(doc("bad9", "* 26 * * *"))
        await settle([a, b])
        assert await told(ours["a"]) + await told(ours["b"]) == ["bad9.yaml"]

    asyncio.run(main())


def test_a_member_that_died_before_this_one_joined_told_nothing_of_what_broke_since(
    tmp_path: Path,
) -> None:
    """Every replica killed, then started again within the lease: the dead ones' records are
    still live, but none renews. The first pass waits for them (a lease and a half, here a
    short one) and, as none renewed, tells every error: what broke while they were down is
    not lost."""
    clock = Clock()
    registry = Registry(clock)
    dead = replica(registry, "a")
    dead.renew()
    dead.told(BROKEN[:3], tmp_path)  # told before it died
    clock.now += timedelta(seconds=0.1)  # within the lease (a short one: the wait's bound)
    b = Replica(Announcement("b", lease_seconds=0.2), MemoryMembership(registry))
    b.renew()
    assert [m.id for m in b.members] == ["a", "b"]  # the dead record is still live
    assert sorted(b.told(BROKEN, tmp_path)) == texts(BROKEN)


def test_a_member_that_renews_while_the_first_pass_waits_told_them(tmp_path: Path) -> None:
    clock = Clock()
    registry = Registry(clock)
    a = replica(registry, "a")
    a.renew()
    clock.now += timedelta(seconds=1)
    b = replica(registry, "b")
    b.renew()  # ``a`` has not renewed since ``b`` joined: alive or dead, not known yet

    async def main() -> list[str]:
        notifier = Notifier(
            parse(CONFIG, "n.yaml", tmp_path), metrics=Metrics(), mine=b.mine, replicas=b
        )
        notifier.after_pass(DesiredState({}, BROKEN))
        drained = asyncio.create_task(notifier._drain())
        await asyncio.sleep(0.1)
        assert not drained.done()  # waiting for ``a`` to renew or expire
        a.renew()
        b.renew()
        await drained
        return [t for m in notifier.queues["hook"] for t in m.body["errors"]]

    assert asyncio.run(main()) == []
