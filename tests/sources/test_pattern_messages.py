"""A value that fails a field's pattern is said in words, with what to write: pydantic's
"String should match pattern '^\\d{3}(-\\d{3})?...'" told a user who wrote `'200, 204'` or
`HTTP://host` neither what was wrong nor how to fix it. A URL is never quoted (it may hold a
password: definition errors are logged, shown and sent)."""

from __future__ import annotations

import pytest

from reconciler.sources.documents import parse_text

HTTP = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: a}
spec:
  schedule: "@daily"
  http: {%s}
"""


def errors_of(fields: str) -> list[str]:
    return [str(e) for e in parse_text(HTTP % fields, "t.yaml").errors]


@pytest.mark.parametrize(
    "url", ["ftp://u:secret@x/", "HTTP://x/", "http ://x/", "https://exa mple.com/", "/relative"]
)
def test_a_url_that_is_no_http_url(url: str) -> None:
    [error] = errors_of(f"url: '{url}'")
    assert error == (
        "t.yaml:6:10: spec.http.url: not an http:// or https:// URL: write one such as "
        "https://example.com/path (the scheme in lower case, a host, no spaces: %20)"
    )
    assert "secret" not in error


@pytest.mark.parametrize("written", ["200, 204", "2xx", "200-299;304", ""])
def test_expect_status_that_is_no_list_of_statuses(written: str) -> None:
    assert errors_of(f"url: 'http://x/', expectStatus: '{written}'") == [
        f"t.yaml:6:28: spec.http.expectStatus: {written!r} is not a list of statuses: 3-digit "
        "statuses and ranges, separated by commas without spaces, e.g. '200-299,304'"
    ]


def test_a_header_name_that_is_no_token() -> None:
    assert errors_of("url: 'http://x/', headers: [{name: 'Api Key', value: v}]") == [
        "t.yaml:6:39: spec.http.headers[0].name: 'Api Key' is not a header name: letters, "
        "digits and !#$%&'*+-.^_`|~ only, no spaces or ':' (e.g. X-Api-Key)"
    ]
