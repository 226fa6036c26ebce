"""The crontask command line.

Parsing imports only what parsing needs. ``main`` builds the parser from the modules that hold
the commands' arguments (``serve``, ``inspect``, ``history``, ``remote``), which load no web,
Kubernetes, database or scheduler stack, no YAML and no pydantic; a command's work is imported
by its handler when it runs (``serve`` -> ``daemon``, ``inspect`` -> ``definitions``, the run
store in ``history``), so that ``--help`` and a usage error are answered at once
(``tests/cli/test_light_start.py`` keeps it so).
"""
