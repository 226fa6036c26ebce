"""The runner: executes one attempt of a task's action.

``command`` runs a program in its own process group with a timeout and a bounded output tail.
Policies (concurrency, deadlines) and records are the dispatcher's (``controller.dispatch``).
"""
