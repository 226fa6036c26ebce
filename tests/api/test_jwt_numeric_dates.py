"""A JWT's ``exp``, ``nbf`` and ``iat`` are JSON numbers (RFC 7519's NumericDate). PyJWT reads
them with ``int()``, which takes ``"99999999999"`` and ``true`` as well: a token whose ``exp``
was a string was taken, an admin's for three thousand years. Such a token is refused (401,
``invalid_token``); a number with a fraction is a NumericDate and is taken."""

from __future__ import annotations

import time
from typing import Any

import pytest

from reconciler.api.auth import AuthConfig, AuthFailed
from tests.api.conftest import AppFactory, TestClient, bearer, make_jwt

FAR = int(time.time()) + 10 * 365 * 86400


@pytest.mark.parametrize(
    ("claims", "claim"),
    [
        ({"exp": str(FAR)}, "exp"),
        ({"nbf": "1"}, "nbf"),
        ({"iat": "1"}, "iat"),
        ({"nbf": False}, "nbf"),  # int(False) is 0: not before 1970
        ({"iat": True}, "iat"),
    ],
)
def test_a_date_that_is_no_json_number_is_refused(
    make_app: AppFactory, auth_config: AuthConfig, claims: dict[str, Any], claim: str
) -> None:
    token = make_jwt("admin", **claims)
    with pytest.raises(AuthFailed) as failed:
        auth_config.authenticate(f"Bearer {token}")
    assert failed.value.reason == f"jwt invalid ({claim} is not a number)"
    assert failed.value.invalid_token
    with TestClient(make_app(auth_config)) as client:
        response = client.get("/api/v1/tasks", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_dates_with_a_fraction_are_numbers(make_app: AppFactory, auth_config: AuthConfig) -> None:
    now = time.time()
    token = make_jwt("viewer", exp=now + 600.5, nbf=now - 0.5, iat=now - 0.25)
    assert auth_config.authenticate(f"Bearer {token}").name == "user-viewer"
    with TestClient(make_app(auth_config)) as client:
        assert client.get("/api/v1/tasks", headers=bearer(token)).status_code == 200
