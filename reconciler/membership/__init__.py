"""Membership: which crontask replicas are alive, on services that already exist.

The seam is :class:`~reconciler.membership.base.Membership` (``base.py``). Implementations:
``memory.py`` (a twin for tests, on a fake clock), ``leases.py`` (one ``coordination.k8s.io/v1``
Lease per replica), and the PostgreSQL members table in ``reconciler.store.members`` (the store
package is the one that speaks SQL). Nothing else decides who is alive.
"""
