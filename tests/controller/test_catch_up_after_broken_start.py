"""A task whose file cannot be read at a start (a definition error), or that a start finds no
task at all (a folder not mounted yet), is not known to have gone: once its file is read, it
catches up the slots it missed while crontask was down from its last recorded slot, as it would
have at the start (README, *What happens to every slot*: Downtime), not from then as a task
declared anew. Once a pass reads every file again, a task declared later is declared anew.
crontask over a folder on a fake clock, its runs in a real SQLite file that each start opens
again, as ``crontask run`` does."""

from __future__ import annotations

from pathlib import Path

from tests.controller.test_catch_up_after_readd import World, play


def _break(w: World, name: str = "job") -> None:
    (w.folder / "tasks" / f"{name}.yaml").write_text("apiVersion: [\n")


def test_a_task_whose_file_broke_across_a_restart_catches_up_once_it_is_fixed(
    tmp_path: Path,
) -> None:
    async def body(w: World) -> World:
        w.declare("other", "0 0 1 1 *")
        w.declare()
        await w.reconcile()
        await w.advance(3600 + 1800)  # 13:00 runs; 13:30:30
        _break(w)
        w = await w.restart(down=2 * 3600)  # down until 15:30:30: 14:00 and 15:00 missed
        await w.advance(0)
        assert w.runs() == [("13:00", "schedule", None)]  # not declared: nothing yet
        await w.advance(60)
        w.declare()  # 15:31:30: fixed
        await w.reconcile()
        assert w.runs() == [
            ("13:00", "schedule", None),
            ("14:00", "schedule", "Superseded"),
            ("15:00", "catchup", None),
        ]
        await w.advance(3600)
        assert w.runs()[-1] == ("16:00", "schedule", None)
        return w

    play(tmp_path, body)


def test_once_every_file_is_read_a_task_declared_later_is_declared_anew(
    tmp_path: Path,
) -> None:
    async def body(w: World) -> World:
        w.declare("other", "0 0 1 1 *")
        w.declare()
        await w.reconcile()
        await w.advance(3600 + 1800)  # 13:00 runs; 13:30:30
        _break(w)
        w = await w.restart(down=2 * 3600)  # 15:30:30
        w.remove()  # the broken file goes: every file is read again
        await w.reconcile()
        await w.advance(60)
        w.declare()  # 15:31:30: declared again, after the error was gone
        await w.reconcile()
        assert w.runs() == [("13:00", "schedule", None)]
        await w.advance(3600)
        assert w.runs() == [("13:00", "schedule", None), ("16:00", "schedule", None)]
        return w

    play(tmp_path, body)


def test_a_task_a_start_found_no_file_of_catches_up_once_its_file_comes(tmp_path: Path) -> None:
    async def body(w: World) -> World:
        w.declare()
        await w.reconcile()
        await w.advance(3600 + 1800)  # 13:00 runs; 13:30:30
        w.remove()  # the folder is empty at the start (its mount not there yet)
        w = await w.restart(down=2 * 3600)  # 15:30:30: 14:00 and 15:00 missed
        await w.advance(60)
        w.declare()  # 15:31:30: the file is there
        await w.reconcile()
        assert w.runs() == [
            ("13:00", "schedule", None),
            ("14:00", "schedule", "Superseded"),
            ("15:00", "catchup", None),
        ]
        return w

    play(tmp_path, body)
