"""Alembic revisions of the run store schema (``vNNNN_*.py``; revision ids ``NNNN``)."""
