"""An http action's ``url`` is sent as written: nothing expands ``${NAME}`` (or ``$NAME``) in it.

In the scheme, the host or the port, such a placeholder is a definition error that names the
part: ``http://x${A}.example/`` was accepted, and every run then asked DNS for the host
``x${a}.example`` and failed; ``http://${HOST}/`` and ``${SCHEME}://...`` were refused with the
pattern's words only. In the path and the query it stays accepted and is sent as written
(``?$filter=``, OData's, is a common query).
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reconciler.core.actions import HttpAction

SECRET = "Secr3tPart"  # noqa: S105 - a test value


def refusal(url: str) -> str:
    with pytest.raises(ValidationError) as caught:
        HttpAction(url=url)
    errors = caught.value.errors()
    assert len(errors) == 1, errors
    assert errors[0]["loc"] == ("url",)
    return str(errors[0]["msg"])


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("http://${HOST}/", "host"),
        ("http://x${A}.example/", "host"),
        ("https://api.${DOMAIN}/v1", "host"),
        ("http://x$A.example/", "host"),
        ("http://$HOST/", "host"),
        ("http://{host}.example/", "host"),
        ("http://[${A}]/", "host"),
        (f"https://svc:{SECRET}@x${{A}}.example/", "host"),  # userinfo before it: not quoted
        ("http://example.com:${PORT}/", "port"),
        ("http://example.com:$PORT/x", "port"),
        ("http://[::1]:${PORT}/", "port"),
        ("${SCHEME}://example.com/", "scheme"),
        ("http${S}://example.com/", "scheme"),
        ("${URL}", "scheme"),
        ("https://user:${TOKEN}@api.example.com/", "user name or password"),
        ("https://${USER}:x@api.example.com/", "user name or password"),
        ("https://${USER}@api.example.com/", "user name or password"),
    ],
)
def test_a_placeholder_in_the_scheme_host_or_port_is_refused_naming_the_part(
    url: str, part: str
) -> None:
    message = refusal(url)
    assert f"the URL's {part} holds" in message, message
    assert "not expanded" in message, message
    assert SECRET not in message
    assert url not in message  # a URL may be a secret: never quoted


def test_an_ambiguous_authority_says_how_to_write_a_password() -> None:
    """``https://u:pa$s/x@host/``: what urlsplit takes for the port is a password with an
    unencoded ``/``; the message says how to write one, and quotes none of it."""
    message = refusal(f"https://svc:{SECRET}$x/y@api.example/")
    assert "%2F" in message, message
    assert SECRET not in message


def test_an_at_in_the_query_gives_no_password_hint() -> None:
    """An ``@`` in the query or the fragment is no password's: the refusal of the host says
    nothing of encoding one. (One in the path may be: ``https://u:p/x@host/``.)"""
    message = refusal("https://api.${DOMAIN}/users?mail=me@example.com#a@b")
    assert "the URL's host holds" in message, message
    assert "%2F" not in message, message


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/${P}/x?q=${Q}",
        "https://api.example/odata/People?$filter=age gt 3".replace(" ", "%20"),
        "https://api.example/odata/People?$top=5&$select=name",
        "https://api.example/$batch",
        "https://svc:pa$$word@api.example/",  # a password may hold a "$"
        "https://svc:$TOKEN@api.example/",  # ... even start with one
        "https://svc:pa${x}y@api.example/",  # only a ${NAME} alone is a placeholder
        "https://api.example/x#${F}",
    ],
)
def test_a_placeholder_in_the_path_query_or_password_is_sent_as_written(url: str) -> None:
    assert HttpAction(url=url).url == url
