"""The one payload reader every agent uses: wrong types, ranges and absences become
DirectiveError (UNEXPECTED_INFORMATION_RECEIVED) with a message naming the field."""

from __future__ import annotations

import pytest

from avsclient.agents import payload
from avsclient.exceptions import DirectiveError


def _error(call) -> DirectiveError:  # type: ignore[no-untyped-def]
    with pytest.raises(DirectiveError) as info:
        call()
    assert info.value.error_type == "UNEXPECTED_INFORMATION_RECEIVED"
    return info.value


def test_text_reads_a_string_and_refuses_everything_else() -> None:
    assert payload.text({"url": "cid:a"}, "url") == "cid:a"
    assert "url is missing" in str(_error(lambda: payload.text({}, "url")))
    assert "must be a string" in str(_error(lambda: payload.text({"url": 7}, "url")))
    assert "must not be empty" in str(_error(lambda: payload.text({"url": ""}, "url")))
    too_long = str(_error(lambda: payload.text({"url": "x" * 11}, "url", max_length=10)))
    assert "11 characters" in too_long
    assert payload.text({}, "label", default=None) is None
    assert payload.text({"label": None}, "label", default="-") == "-"


def test_integer_range_and_type() -> None:
    assert payload.integer({"v": 0}, "v", low=0, high=100) == 0
    assert payload.integer({}, "v", low=0, high=100, default=50) == 50
    # A present value is always checked, even when it equals the default.
    assert "outside" in str(
        _error(lambda: payload.integer({"v": 0}, "v", low=1, high=2, default=0))
    )
    assert "must be an integer" in str(
        _error(lambda: payload.integer({"v": True}, "v", low=0, high=1))
    )
    assert "must be an integer" in str(
        _error(lambda: payload.integer({"v": 1.5}, "v", low=0, high=9))
    )
    assert "must be an integer" in str(
        _error(lambda: payload.integer({"v": "5"}, "v", low=0, high=9))
    )


def test_a_huge_integer_is_refused_without_printing_it() -> None:
    huge = int("9" * 4000)
    message = str(_error(lambda: payload.integer({"t": huge}, "t", low=0, high=10**6)))
    assert "4000 digits" in message
    assert len(message) < 200


def test_boolean_choice_obj_seq() -> None:
    assert payload.boolean({"mute": False}, "mute") is False
    assert "true or false" in str(_error(lambda: payload.boolean({"mute": 0}, "mute")))
    allowed = ("REPLACE_ALL", "ENQUEUE")
    assert payload.choice({"b": "ENQUEUE"}, "b", allowed) == "ENQUEUE"
    assert payload.choice({}, "b", allowed, default="ENQUEUE") == "ENQUEUE"
    assert "one of REPLACE_ALL, ENQUEUE" in str(
        _error(lambda: payload.choice({"b": "X"}, "b", allowed))
    )
    item = payload.obj({"audioItem": {"stream": {}}}, "audioItem")
    assert item == {"stream": {}}
    nested = str(_error(lambda: payload.text(item["stream"], "url", where="audioItem.stream")))
    assert "audioItem.stream.url is missing" in nested
    assert "must be an object" in str(_error(lambda: payload.obj({"a": [1]}, "a")))
    assert payload.seq({"a": [1, 2]}, "a") == [1, 2]
    assert "more than 1" in str(_error(lambda: payload.seq({"a": [1, 2]}, "a", max_items=1)))
    assert "must be an object" in str(_error(lambda: payload.text([], "a")))  # type: ignore[arg-type]
