"""The REST API (FastAPI): tasks, runs, manual triggers, auth, health and metrics."""
