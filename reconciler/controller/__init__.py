"""The controller: wires sources, the planner, the scheduler, the runner and the store.

``dispatch`` turns due slots into recorded runs (policies, deadlines, exactly-once claims).

``reconcile`` holds one pass (read sources, assemble, plan, apply); ``runtime`` runs passes on
events and on a resync timer, and owns start-up and shutdown.
"""
