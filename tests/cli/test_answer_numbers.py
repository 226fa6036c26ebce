"""An answer refused for a number JSON has not (``NaN``, ``Infinity``, ``1e400``, which
Python reads as infinite) says that number, not "something that is not JSON": the body was
JSON but for that value, and the line said the server answered garbage. The refusal is an
:class:`~reconciler.cli.answers.UnreadableAnswer`: a success answered whose body cannot be
read, which a command whose request changes something (``trigger``) can tell apart from a
request that was not answered."""

from __future__ import annotations

import pytest

from reconciler.cli.answers import RemoteError, UnreadableAnswer, decode
from tests.cli.hostile import HostileServer, assert_one_line_error, cli


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("NaN", "NaN is not JSON"),
        ("-Infinity", "-Infinity is not JSON"),
        ("1e400", "1e400 is too large a number"),
    ],
)
def test_the_number_refused_is_said(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], value: str, said: str
) -> None:
    hostile.answer = lambda h: h.send(200, f'{{"items": [{{"key": "ops/a", "x": {value}}}]}}')
    code = cli("tasks", "--server", hostile.url, "--json")
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_line_error(code, err, f"{hostile.url} answered a number crontask refuses: {said}")


def test_a_body_that_is_not_json_is_still_said_so() -> None:
    with pytest.raises(UnreadableAnswer, match=r"^http://s answered with something that is not"):
        decode(b"{nope", "http://s")


def test_an_unreadable_answer_is_a_remote_error_of_its_own() -> None:
    with pytest.raises(UnreadableAnswer) as caught:
        decode(b'{"x": NaN}', "http://s")
    assert isinstance(caught.value, RemoteError)
