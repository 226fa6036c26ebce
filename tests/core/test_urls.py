"""``redact_url`` never raises: a URL ``urlsplit`` refuses (a ``[`` or ``]`` in its password
makes it look for an IPv6 host, and its error quotes what it found) loses its whole userinfo,
or is shown as ``***`` whole; it never shows the password."""

from __future__ import annotations

import pytest

from reconciler.core.urls import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://u:Xy[Secr3t]Zw@127.0.0.1:1/db",
            "postgresql+psycopg://127.0.0.1:1/db",
        ),
        ("https://alice:Tok[Secr3t]y@host/r.git", "https://host/r.git"),
        ("https://alice:Tok[Secr3t@host/r.git?t=Secr3t#Secr3t", "https://host/r.git?t=***#***"),
        ("ssh://git:a]Secr3t@host/r.git", "ssh://host/r.git"),
        ("https://Secr3t[x]@[::1]:8443/r.git", "https://[::1]:8443/r.git"),
        ("//u:[Secr3t]@host/x", "//host/x"),
        ("https://u:Secr3t@[not-an-address]/x", "***"),
        ("http://[Secr3t/x", "***"),
    ],
)
def test_a_url_urlsplit_refuses_is_shown_without_its_userinfo(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "Secr3t" not in redact_url(url)
