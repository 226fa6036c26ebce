"""The ``command`` action's runner: the environment every command starts from, and one
:class:`~reconciler.runner.command.CommandRun` an attempt (whose process and its group that
module supervises)."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.core.desired import Definition
from reconciler.core.runs import RunRecord
from reconciler.runner.base import run_environment
from reconciler.runner.command import CommandRun


class CommandRunner:
    """The ``command`` action: each attempt is a :class:`CommandRun` of ``spec.command``.

    ``task_env`` is what every command's environment starts from (see
    ``reconciler.runner.environment``); then the task's own ``env``; then the run's
    ``CRONTASK_*`` variables, which nothing overrides.
    """

    field = "command"

    def __init__(
        self,
        task_env: Mapping[str, str],
        *,
        kill_grace: float = 10.0,
        output_limit: int = 64 * 1024,
    ) -> None:
        self.task_env = dict(task_env)
        self.kill_grace = kill_grace
        self.output_limit = output_limit

    def attempt(self, definition: Definition, record: RunRecord) -> CommandRun:
        spec = definition.task.spec
        assert spec.command is not None  # the registry asks only tasks that set it
        # Which crontask started it: how the next start knows a command left by a crashed one
        # (``runner.leftovers``).
        instance = {"CRONTASK_INSTANCE": record.owner} if record.owner else {}
        return CommandRun(
            spec.command.args,
            env={**self.task_env, **spec.command.env, **run_environment(record), **instance},
            working_dir=spec.command.working_dir,
            timeout=spec.timeout_seconds,
            kill_grace=self.kill_grace,
            output_limit=self.output_limit,
        )
