"""crontask: a GitOps-style declarative reconciler for scheduled tasks.

Layers, from the outside in (kept honest by the import-linter contracts in pyproject.toml):

- ``reconciler.cli``: the ``crontask`` command.
- ``reconciler.controller``: wires sources, the planner, the scheduler, the runner and the store.
- adapters, each behind a small Protocol with an in-memory twin: ``sources`` (where desired state
  comes from), ``scheduling`` (the only place that imports APScheduler), ``runner`` (executes
  actions), ``store`` (run history).
- ``reconciler.core``: pure data and functions. No I/O, no clock.
"""

__version__ = "0.25.0"
