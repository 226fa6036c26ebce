"""``python -m reconciler`` is ``crontask``."""

from reconciler.cli.main import main

main()
