"""Tests of ``reconciler.store``: one contract suite for every implementation, SQL specifics."""
