"""The PostgreSQL fixtures the API-task store suite shares with the store suite."""

from __future__ import annotations

from tests.store.conftest import pg_admin, pg_url

__all__ = ["pg_admin", "pg_url"]
