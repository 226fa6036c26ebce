"""The state directory and the run store ``crontask run`` opens first, before anything else
of the runtime is built (``controller.runtime``).

A light module on purpose: it imports the state directory's rules and the store's seam only,
never the runtime's parts (the Kubernetes client among them, half a second). ``cli.daemon``
opens the state here before it imports the runtime, so that a state directory or a ``--db``
it refuses is said at once."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from reconciler import statedir
from reconciler.store import DB_FILENAME, decoded_by_0_4, open_store, sqlite_url
from reconciler.store.base import RunStore

log = logging.getLogger("crontask")


def uses_state_dir(*, ha: bool, git: bool) -> bool:
    """Whether ``crontask run`` uses its state directory: not with replicas (``--ha``) without
    git, which keep the API's tasks in the shared store and write nothing there."""
    return not ha or git


def open_state(state_dir: Path, db_url: str | None, *, uses_dir: bool) -> RunStore:
    """The state directory made, or checked, as ``reconciler.statedir`` says (if ``uses_dir``:
    :func:`uses_state_dir`), then the run store (``db_url``, else ``runs.db`` in
    ``state_dir``) opened for writing.

    Raises ``statedir.Refused``, ValueError (a ``--db`` URL that names no store), OSError,
    StoreUnavailable, IncompatibleSchema: the CLI says each in one line."""
    if uses_dir:
        statedir.prepare(state_dir)
        # Before the store: opening it for writing migrates its schema, which a second
        # crontask, refused here, must not do under the one that runs.
        statedir.lock(state_dir)  # released by runtime.serve() on its way out
    try:
        if db_url is None:
            _not_left_by_0_4(state_dir)
        return open_store(db_url or sqlite_url(state_dir), writer=True)
    except BaseException:
        statedir.unlock(state_dir)
        raise


def _not_left_by_0_4(state_dir: Path) -> None:
    """Refuse a state directory whose store crontask 0.4.0 kept at the decoded path, while it
    has none of its own; warn when it has both (a rollback to 0.4.0 writes there again)."""
    old = decoded_by_0_4(state_dir)
    if old is None:
        return
    ours = (state_dir / DB_FILENAME).absolute()
    if not os.path.lexists(ours):
        raise statedir.Refused(
            f"refusing the state directory {state_dir.absolute()}: its run store is at {old}, "
            "where crontask 0.4.0 and older kept it for a path holding %XX; stop the crontask "
            f"using it, move runs.db with its -wal and -shm files (if any) to {ours}, and start "
            "again; if it is another state directory's own, create an empty runs.db there "
            "(README, Upgrading)"
        )
    if os.path.lexists(old.parent / statedir.LOCK_FILE):
        return  # the decoded folder is a state directory of its own: that store is its own
    log.warning(
        "a run store crontask 0.4.0 kept for this state directory is still at the path its "
        "name decodes to; this one is used (a rollback to 0.4.0 would use that one)",
        extra={"fields": {"used": str(ours), "other": str(old)}},
    )
