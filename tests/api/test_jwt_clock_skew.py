"""A JWT from an issuer whose clock runs a little ahead of crontask's (or behind) is taken:
one minted a second ahead (``iat``, ``nbf`` in the future) was refused until that second had
passed here. The leeway is bounded: a token from further off is refused as before."""

from __future__ import annotations

import time
from typing import Any

from reconciler.api.auth import JWT_LEEWAY_SECONDS, AuthConfig
from tests.api.conftest import AppFactory, TestClient, bearer, make_jwt


def test_a_small_clock_skew_is_allowed_and_a_large_one_is_not(
    make_app: AppFactory, auth_config: AuthConfig
) -> None:
    now = int(time.time())
    ahead, far = now + 5, now + JWT_LEEWAY_SECONDS + 60
    with TestClient(make_app(auth_config)) as client:

        def status(**claims: Any) -> int:
            token = make_jwt("viewer", **claims)
            return int(client.get("/api/v1/tasks", headers=bearer(token)).status_code)

        assert status(iat=ahead, nbf=ahead) == 200
        assert status(exp=now - 5) == 200
        assert status(nbf=far) == 401
        assert status(exp=now - JWT_LEEWAY_SECONDS - 60) == 401
