"""An alias whose anchor YAML does not know says why: its anchor is in an earlier document (an
alias reaches only its own, up to the '---'), or later, or nowhere. "found undefined alias"
alone left a user who kept shared settings in a first document of its own at a loss."""

from __future__ import annotations

from reconciler.sources.documents import parse_text

SHARED = "base: &shared\n  schedule: '@daily'\n---\n"
TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: c}
spec:
  <<: *shared
  command: {args: [x]}
"""


def last_error(text: str) -> str:
    return str(parse_text(text, "t.yaml").errors[-1])


def test_an_anchor_of_an_earlier_document() -> None:
    assert last_error(SHARED + TASK) == (
        "t.yaml:8:7: YAML syntax error: found undefined alias (the anchor &shared is in an "
        "earlier document: an alias reaches only the document it is in, up to its '---')"
    )


def test_an_anchor_further_on_or_nowhere() -> None:
    assert last_error("a: [*b, &b 1]\n") == (
        "t.yaml:1:5: YAML syntax error: found undefined alias "
        "(no anchor &b before it: an anchor comes before its aliases)"
    )
    assert last_error("a: *nope\n") == (
        "t.yaml:1:4: YAML syntax error: found undefined alias "
        "(no anchor &nope before it: an anchor comes before its aliases)"
    )


def test_an_anchor_in_a_comment_of_the_same_document_is_none() -> None:
    """A block commented out with its anchor: no '---' comes between, so no earlier document
    holds it."""
    assert last_error("# base: &shared\n#   schedule: '@daily'\n" + TASK) == (
        "t.yaml:7:7: YAML syntax error: found undefined alias "
        "(no anchor &shared before it: an anchor comes before its aliases)"
    )
