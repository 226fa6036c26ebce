"""Sign out ends a session when the browser says a page of this origin posted it
(``Sec-Fetch-Site: same-origin``), else only with the token its form carries: a post to
``/logout`` without it (or with another session's) was a 303 to /login with the cookie cleared,
whatever the form said. The browser's word is enough because a page left open before the same
browser signed in again carries the replaced session's token, which no refresh or reload of it
changes: its Sign out was refused, and the person kept signed in. A session that is already
gone (no cookie, an ended one, one whose token the auth file no longer holds) has nothing to
protect: its Sign out, with the stale page's token or none, still clears the cookie and leads
to /login, so that no one is kept on a page whose Sign out answers "reload". The Origin is
checked either way."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from reconciler.api.auth import AuthConfig, Role
from reconciler.web.session import COOKIE, seal
from tests.api.conftest import STATIC_TOKENS, TestClient, write_auth
from tests.web.test_session import guarded, sign_in

__all__ = ["guarded"]  # a fixture, used by name

SIGN_OUT = re.compile(
    r'<form method="post" action="/logout"><input type="hidden" name="csrf" value="([0-9a-f]+)">'
)


def signed_in(client: TestClient, role: Role = Role.VIEWER) -> str:
    """Sign in as ``role``: the token the page's Sign out form carries."""
    sign_in(client, STATIC_TOKENS[role])
    found = SIGN_OUT.search(client.get("/").text)
    assert found is not None, "no Sign out form on the signed-in page"
    return found.group(1)


def cleared(response: httpx.Response) -> bool:
    """Whether ``response`` removes the session cookie."""
    cookies = response.headers.get_list("set-cookie")
    return any(c.startswith(f"{COOKIE}=") and "Max-Age=0" in c for c in cookies)


def test_a_sign_out_without_its_forms_token_is_refused(guarded: TestClient) -> None:
    token = signed_in(guarded)
    for form in ({}, {"csrf": ""}, {"csrf": "0" * 64}, {"csrf": token[:-1]}):
        response = guarded.post("/logout", data=form, follow_redirects=False)
        assert response.status_code == 403, form
        assert "set-cookie" not in response.headers, form
    # A person's browser gets the page Run now's refusal is, saying what to do.
    shown = guarded.post("/logout", headers={"Accept": "text/html"}, follow_redirects=False)
    assert shown.status_code == 403
    assert "stale or not from this page: sign out here" in shown.text
    assert guarded.get("/", follow_redirects=False).status_code == 200  # still signed in


def test_the_token_of_another_session_does_not_sign_out(guarded: TestClient) -> None:
    operators = signed_in(guarded, Role.OPERATOR)
    guarded.cookies.clear()
    admins = signed_in(guarded, Role.ADMIN)
    refused = guarded.post("/logout", data={"csrf": operators}, follow_redirects=False)
    assert refused.status_code == 403
    response = guarded.post("/logout", data={"csrf": admins}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert cleared(response)
    assert guarded.get("/", follow_redirects=False).status_code == 303


def test_a_page_of_this_origin_signs_out_a_session_signed_in_after_it(
    guarded: TestClient,
) -> None:
    """Tab A signed in as the operator, then tab B of the same browser as the admin (another
    credential, as every sign-in with a JWT is): A's Sign out carries the operator's token, and
    no refresh of A changes it (the form is outside the refreshed region). It was refused, the
    admin kept signed in. The browser says a page of this origin posted it: that is enough."""
    operators = signed_in(guarded, Role.OPERATOR)
    guarded.cookies.clear()
    signed_in(guarded, Role.ADMIN)
    # Not for a post the browser says came from elsewhere, or that says nothing of where it
    # came from (no Origin, no Sec-Fetch-Site): those need the session's own token.
    for said in (
        {"Origin": "http://other.testserver", "Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "none"},
        {},
    ):
        refused = guarded.post(
            "/logout", data={"csrf": operators}, headers=said, follow_redirects=False
        )
        assert refused.status_code == 403, said
        assert "set-cookie" not in refused.headers, said
    response = guarded.post(
        "/logout",
        data={"csrf": operators},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/login"
    assert cleared(response)
    assert guarded.get("/", follow_redirects=False).status_code == 303  # signed out


def test_a_sign_out_from_another_site_is_refused_with_the_token_too(guarded: TestClient) -> None:
    token = signed_in(guarded)
    response = guarded.post(
        "/logout", data={"csrf": token}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    assert guarded.get("/", follow_redirects=False).status_code == 200


@pytest.mark.parametrize("gone", ["no cookie", "ended", "token revoked", "not sealed here"])
@pytest.mark.parametrize("with_token", [True, False])
def test_a_sign_out_of_a_session_already_gone_clears_and_leads_to_sign_in(
    guarded: TestClient, tmp_path: Path, gone: str, with_token: bool
) -> None:
    stale = signed_in(guarded)  # what the page left open still carries
    key = AuthConfig.load(write_auth(tmp_path)).session_key  # the file guarded reads
    guarded.cookies.clear()
    if gone == "ended":
        guarded.cookies.set(COOKIE, seal(key, STATIC_TOKENS[Role.VIEWER], time.time() - 1))
    elif gone == "token revoked":  # one the auth file does not hold (any more)
        guarded.cookies.set(COOKIE, seal(key, "a-token-taken-out-of-the-file", time.time() + 60))
    elif gone == "not sealed here":
        guarded.cookies.set(COOKIE, seal(b"another auth file", "x", time.time() + 60))
    assert guarded.get("/", follow_redirects=False).status_code == 303  # no session
    form = {"csrf": stale} if with_token else {}
    response = guarded.post("/logout", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/login"
    assert cleared(response)
    # Its Origin is still checked: another site gains nothing, and is refused all the same.
    refused = guarded.post("/logout", headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403


def test_over_plain_http_to_a_host_name_the_origin_is_enough(guarded: TestClient) -> None:
    """Browsers send no Sec-Fetch-* to an origin that is not secure (http:// to a host name,
    not localhost): the stale tab's Sign out carries only its Origin, this origin's, which no
    page's script can set. It was refused, the newer session kept signed in."""
    operators = signed_in(guarded, Role.OPERATOR)
    guarded.cookies.clear()
    signed_in(guarded, Role.ADMIN)
    response = guarded.post(
        "/logout",
        data={"csrf": operators},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert cleared(response)
    assert guarded.get("/", follow_redirects=False).status_code == 303  # signed out
